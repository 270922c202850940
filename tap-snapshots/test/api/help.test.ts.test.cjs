/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/api/help.test.ts > TAP > noise-cfg --help > noise-cfg --help 1`] = `
noise-cfg <command> [options]

Deliver configuration updates over Noise (XXpsk3 / NNpsk0) secure channels.

Commands:
  noise-cfg serve               Run the update server
  noise-cfg task                Create, follow and manage update tasks
  noise-cfg pull [token]        Pull a task's files with a token and apply them atomically
  noise-cfg rollback            Make the previous version of a pull's --out current again
  noise-cfg token               Work with task tokens
  noise-cfg channel             Run the secure channel alone: stdin lines become messages, messages
                                go to stdout
  noise-cfg demo                Run both product handshakes and a transport round trip in one
                                process, step by step
  noise-cfg completion [shell]  Print a shell completion script (bash or zsh)

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]

Exit codes: 0 success, 1 failure, 2 usage or bad input, 3 no such task or client, 4 already done
(task ended, client already revoked), 5 data directory or database problem, 6 task ended incomplete
(task watch), 10 bad or expired token, 11 cannot reach the peer, 12 authentication failed, 13
rejected, 14 digest mismatch, 15 apply failed, 16 command failed, 17 verify command failed (nothing
changed). See SPEC.md §6.

`

exports[`test/api/help.test.ts > TAP > noise-cfg channel --help > noise-cfg channel --help 1`] = `
noise-cfg channel

Run the secure channel alone: stdin lines become messages, messages go to stdout

Commands:
  noise-cfg channel listen             Accept channel connections
  noise-cfg channel connect <address>  Connect to a channel listener at HOST:PORT

Options:
  -h, --help      Show help                                                                [boolean]
      --version   Show version number                                                      [boolean]
      --mode      Noise protocol: xxpsk3 (Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b) or nnpsk0
                                                   [choices: "xxpsk3", "nnpsk0"] [default: "xxpsk3"]
      --psk-file  File holding the 32-byte PSK as 64 hex characters (mode 0600)  [string] [required]
      --key-file  Our static X25519 secret key, 64 hex characters; created 0600 with a new key if
                  missing (xxpsk3)                                                          [string]
      --pin       Expected remote static public key, 64 hex characters (required to connect in
                  xxpsk3)                                                                   [string]
      --task-id   Task id sent in the preamble (not with --raw)        [string] [default: "channel"]
      --raw       Plain Noise over 2-byte length framing: no preamble, END or rekey schedule
                                                                          [boolean] [default: false]
      --prologue  Prologue as hex (only with --raw; default empty)                          [string]

`

exports[`test/api/help.test.ts > TAP > noise-cfg channel connect --help > noise-cfg channel connect --help 1`] = `
noise-cfg channel connect <address>

Connect to a channel listener at HOST:PORT

Positionals:
  address  HOST:PORT of the listener                                             [string] [required]

Options:
  -h, --help      Show help                                                                [boolean]
      --version   Show version number                                                      [boolean]
      --mode      Noise protocol: xxpsk3 (Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b) or nnpsk0
                                                   [choices: "xxpsk3", "nnpsk0"] [default: "xxpsk3"]
      --psk-file  File holding the 32-byte PSK as 64 hex characters (mode 0600)  [string] [required]
      --key-file  Our static X25519 secret key, 64 hex characters; created 0600 with a new key if
                  missing (xxpsk3)                                                          [string]
      --pin       Expected remote static public key, 64 hex characters (required to connect in
                  xxpsk3)                                                                   [string]
      --task-id   Task id sent in the preamble (not with --raw)        [string] [default: "channel"]
      --raw       Plain Noise over 2-byte length framing: no preamble, END or rekey schedule
                                                                          [boolean] [default: false]
      --prologue  Prologue as hex (only with --raw; default empty)                          [string]

`

exports[`test/api/help.test.ts > TAP > noise-cfg channel listen --help > noise-cfg channel listen --help 1`] = `
noise-cfg channel listen

Accept channel connections

Options:
  -h, --help      Show help                                                                [boolean]
      --version   Show version number                                                      [boolean]
      --mode      Noise protocol: xxpsk3 (Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b) or nnpsk0
                                                   [choices: "xxpsk3", "nnpsk0"] [default: "xxpsk3"]
      --psk-file  File holding the 32-byte PSK as 64 hex characters (mode 0600)  [string] [required]
      --key-file  Our static X25519 secret key, 64 hex characters; created 0600 with a new key if
                  missing (xxpsk3)                                                          [string]
      --pin       Expected remote static public key, 64 hex characters (required to connect in
                  xxpsk3)                                                                   [string]
      --task-id   Task id sent in the preamble (not with --raw)        [string] [default: "channel"]
      --raw       Plain Noise over 2-byte length framing: no preamble, END or rekey schedule
                                                                          [boolean] [default: false]
      --prologue  Prologue as hex (only with --raw; default empty)                          [string]
      --listen    Address to listen on, HOST:PORT                                [string] [required]
      --echo      Send every received message back                        [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg demo --help > noise-cfg demo --help 1`] = `
noise-cfg demo

Run both product handshakes and a transport round trip in one process, step by step

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]
      --json     Print the steps as one JSON array                        [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg pull --help > noise-cfg pull --help 1`] = `
noise-cfg pull [token]

Pull a task's files with a token and apply them atomically

Positionals:
  token  The task token (prefer --token-file or NOISE_CFG_TOKEN: argv is visible in process lists)
                                                                                            [string]

Options:
  -h, --help             Show help                                                         [boolean]
      --version          Show version number                                               [boolean]
      --token-file       Read the token from FILE (- for stdin)                             [string]
      --out              Output directory, owned by noise-cfg (a link to the current version)
                                                                                            [string]
      --verify           Shell command to check the staged files before they become current (they
                         are in $NOISE_CFG_STAGED_DIR); non-zero: nothing changes, exit 17  [string]
      --exec             Shell command to run after applying; its exit code decides applied or
                         failed; on failure the previous version comes back                 [string]
      --keep-on-failure  When --exec fails, keep the new files current instead of rolling back
                                                                          [boolean] [default: false]
      --name             How this client appears to the operator (default: host name)       [string]
      --dry-run          Show what would change; write and report nothing [boolean] [default: false]
      --check            Check the token, the server and its pin; take no client slot
                                                                          [boolean] [default: false]
      --identity-dir     Where this client's identity key lives (default $XDG_CONFIG_HOME/noise-cfg)
                                                                                            [string]
      --max-file-mode    Widest permission bits a file gets, in octal (default 755: no group or
                         others write); the umask applies too                               [string]
      --retry            While the server is busy or cannot be reached, keep trying with backoff for
                         this long (0: one attempt)                        [string] [default: "30s"]
      --progress         Show a progress bar on stderr (default: when stderr is a terminal and not
                         --json); --no-progress: never                                     [boolean]
      --json             Print one JSON object                            [boolean] [default: false]

Commands: --verify and --exec run with /bin/sh -c in the current directory, with the environment of
pull minus NOISE_CFG_TOKEN and NOISE_CFG_ADMIN_TOKEN, plus NOISE_CFG_TASK_ID, NOISE_CFG_DIGEST and
NOISE_CFG_OUT_DIR (and NOISE_CFG_STAGED_DIR for --verify); their output goes to stderr. noise-cfg
keeps the previous version until the next successful apply: \`noise-cfg rollback --out DIR\` goes back
to it.

Exit codes: 0 applied or up to date, 10 bad or expired token (checked before connecting), 11 cannot
reach the server or it is busy (after --retry), or it closed the connection mid-transfer (retry), 12
authentication failed, 13 rejected by the server (expired by its clock, cancelled, full, revoked),
14 digest mismatch, 15 apply failed, 16 command failed, 17 --verify failed (nothing changed).

`

exports[`test/api/help.test.ts > TAP > noise-cfg serve --help > noise-cfg serve --help 1`] = `
noise-cfg serve

Run the update server

Options:
  -h, --help              Show help                                                        [boolean]
      --version           Show version number                                              [boolean]
      --data              Data directory: keys (0600) and the task database; created (0700) on first
                          start, and locked while serving
                                          [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store             Where the tasks are: sqlite (in the data directory) or
                          postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several
                          servers; password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --listen            Address for client connections, HOST:PORT
                                                                  [string] [default: "0.0.0.0:7447"]
      --api               Address of the REST API, HOST:PORT, or "off"
                                                                [string] [default: "127.0.0.1:7448"]
      --api-allow-remote  Allow the API on a non-loopback address (it carries tokens: put it behind
                          TLS)                                            [boolean] [default: false]
      --advertise         HOST:PORT written into tokens (default: the listen address, or this
                          machine's first IPv4 address)                                     [string]
      --log-format        One line per connection outcome, as text or JSON
                                                         [choices: "text", "json"] [default: "text"]
      --demo              Also create a demo task (1 file, 1 hour) and print how to pull it
                                                                          [boolean] [default: false]
      --grace-seconds     On SIGINT/SIGTERM, how long pulls in flight may finish
                                                                              [number] [default: 10]
      --workers           Server processes sharing the ports and the data directory, 1 to 256, or
                          "auto" (one per CPU)                               [string] [default: "1"]
      --retain            Delete tasks (records and content) this long after they ended, checked
                          hourly: 12h, 7d, 30d; 0 or off keeps them forever [string] [default: "7d"]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task --help > noise-cfg task --help 1`] = `
noise-cfg task

Create, follow and manage update tasks

Commands:
  noise-cfg task create                  Create a task and print its token
  noise-cfg task list                    List tasks, newest first
  noise-cfg task show <id>               Show a task with its files and clients
  noise-cfg task watch <id>              Follow a task live until it completes, expires or is
                                         cancelled
  noise-cfg task token <id>              Print the token of an active task again
  noise-cfg task cancel <id>             Cancel a task: its clients are refused from the next
                                         connection on
  noise-cfg task revoke <id> <identity>  Refuse one client of a task from now on
  noise-cfg task delete <id>             Delete a task: cancel it if active, then remove its files,
                                         clients and events
  noise-cfg task prune                   Delete every task that ended longer ago than --ended-before

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task cancel --help > noise-cfg task cancel --help 1`] = `
noise-cfg task cancel <id>

Cancel a task: its clients are refused from the next connection on

Positionals:
  id                                                                             [string] [required]

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]
      --data     Data directory of the server, which serve created (also where --api finds
                 admin.token)             [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store    Where the tasks are: sqlite (in the data directory) or
                 postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several servers;
                 password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --api      Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data
                 directory                                                                  [string]
      --json     Print JSON                                               [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task create --help > noise-cfg task create --help 1`] = `
noise-cfg task create

Create a task and print its token

Options:
  -h, --help                Show help                                                      [boolean]
      --version             Show version number                                            [boolean]
      --data                Data directory of the server, which serve created (also where --api
                            finds admin.token)
                                          [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store               Where the tasks are: sqlite (in the data directory) or
                            postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by
                            several servers; password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --api                 Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the
                            data directory                                                  [string]
      --json                Print JSON                                    [boolean] [default: false]
      --file                A file (lands under its base name) or a directory (its files, relative
                            paths kept); repeatable                               [array] [required]
      --ttl                 Time to live: 90s, 10m, 1h, 2d                  [string] [default: "1h"]
      --max-clients         Complete the task once this many clients have applied it        [number]
      --mode                xxpsk3 (pinned server key, client identities) or nnpsk0 (PSK only)
                                                   [choices: "xxpsk3", "nnpsk0"] [default: "xxpsk3"]
      --name                A name for people                                               [string]
      --advertise           HOST:PORT clients connect to (with --data; default: what serve
                            advertised)                                                     [string]
  -q, --quiet               Print only the token, nothing on stderr       [boolean] [default: false]
      --print-pull-command  Print a ready pull command that passes the token in the environment
                                                                          [boolean] [default: false]
      --qr                  Also draw the token as a QR code (on stderr)  [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task list --help > noise-cfg task list --help 1`] = `
noise-cfg task list

List tasks, newest first

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]
      --data     Data directory of the server, which serve created (also where --api finds
                 admin.token)             [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store    Where the tasks are: sqlite (in the data directory) or
                 postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several servers;
                 password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --api      Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data
                 directory                                                                  [string]
      --json     Print JSON                                               [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task revoke --help > noise-cfg task revoke --help 1`] = `
noise-cfg task revoke <id> <identity>

Refuse one client of a task from now on

Positionals:
  id                                                                             [string] [required]
  identity  The client: its identity (hex key in xxpsk3, client id in nnpsk0), a unique prefix of 8
            or more hex characters (logs and watch show 16), or its name when unique
                                                                                 [string] [required]

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]
      --data     Data directory of the server, which serve created (also where --api finds
                 admin.token)             [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store    Where the tasks are: sqlite (in the data directory) or
                 postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several servers;
                 password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --api      Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data
                 directory                                                                  [string]
      --json     Print JSON                                               [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task show --help > noise-cfg task show --help 1`] = `
noise-cfg task show <id>

Show a task with its files and clients

Positionals:
  id                                                                             [string] [required]

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]
      --data     Data directory of the server, which serve created (also where --api finds
                 admin.token)             [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store    Where the tasks are: sqlite (in the data directory) or
                 postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several servers;
                 password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --api      Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data
                 directory                                                                  [string]
      --json     Print JSON                                               [boolean] [default: false]

`

exports[`test/api/help.test.ts > TAP > noise-cfg task watch --help > noise-cfg task watch --help 1`] = `
noise-cfg task watch <id>

Follow a task live until it completes, expires or is cancelled

Positionals:
  id                                                                             [string] [required]

Options:
  -h, --help     Show help                                                                 [boolean]
      --version  Show version number                                                       [boolean]
      --data     Data directory of the server, which serve created (also where --api finds
                 admin.token)             [string] [default: $NOISE_CFG_DATA, else ./noise-cfg-data]
      --store    Where the tasks are: sqlite (in the data directory) or
                 postgres://USER@HOST[:PORT]/DB (also ?host=/socket/dir), shared by several servers;
                 password from NOISE_CFG_STORE_PASSWORD(_FILE)
                                                   [string] [default: $NOISE_CFG_STORE, else sqlite]
      --api      Use the REST API at this URL (e.g. http://127.0.0.1:7448) instead of the data
                 directory                                                                  [string]
      --json     Print JSON                                               [boolean] [default: false]

Exit codes: 0 completed (its --max-clients applied), 6 expired or cancelled (also when no client
came), 3 no such task.

`

exports[`test/api/help.test.ts > TAP > noise-cfg token inspect --help > noise-cfg token inspect --help 1`] = `
noise-cfg token inspect [token]

Show the address, task id, mode, expiry and pin of a token (never its PSK)

Positionals:
  token  The token (or use --token-file or NOISE_CFG_TOKEN)                                 [string]

Options:
  -h, --help        Show help                                                              [boolean]
      --version     Show version number                                                    [boolean]
      --token-file  Read the token from FILE (- for stdin)                                  [string]
      --json        Print one JSON object                                 [boolean] [default: false]

`
