/** Typed yargs command modules: a handler's arguments are what its builder declares, so no handler casts them. */
import type { ArgumentsCamelCase, Argv } from 'yargs';

/** The parsed arguments of a builder: what yargs infers from its options and positionals, camel-cased too. */
export type ArgumentsOf<Builder extends (yargs: never) => Argv<unknown>> = ArgumentsCamelCase<ReturnType<Builder> extends Argv<infer Parsed> ? Parsed : never>;
