#!/usr/bin/python3
"""An independent Noise peer for the interop tests, built from dissononce's pieces (Debian python3-dissononce).

Raw mode: every handshake and transport message is sent as a 2-byte big-endian length and the message; no
preamble, no records; the prologue is agreed out of band; one application message is one transport message; the
stream ends with a TCP FIN.

After the handshake it prints HANDSHAKE_HASH, LOCAL_STATIC and REMOTE_STATIC (XX), then either echoes every
transport message back until EOF (the default), or, with --send N, sends N messages of assorted sizes one at a
time, checks each echo, and half-closes. Any failure: a message on stderr and exit code 1.

Run it with /usr/bin/python3 (Debian's), which has dissononce and cryptography.
"""
import argparse
import hashlib
import hmac
import socket
import struct
import sys

try:
    from dissononce.cipher.chachapoly import ChaChaPolyCipher
    from dissononce.dh.x25519.x25519 import X25519DH
    from dissononce.dh.x25519.private import PrivateKey
    from dissononce.exceptions.decrypt import DecryptFailedException
    from dissononce.hash.blake2b import Blake2bHash
    from dissononce.processing.handshakepatterns.interactive.NN import NNHandshakePattern
    from dissononce.processing.handshakepatterns.interactive.XX import XXHandshakePattern
    from dissononce.processing.impl.cipherstate import CipherState
    from dissononce.processing.impl.handshakestate import HandshakeState
    from dissononce.processing.impl.symmetricstate import SymmetricState
    from dissononce.processing.modifiers.psk import PSKPatternModifier
except ImportError as error:  # pragma: no cover - reported to the test as a clear failure
    sys.stderr.write("dissononce_peer: cannot import dissononce (apt-get install python3-dissononce): %s\n" % error)
    sys.exit(1)

# (base pattern, psk placement) for each protocol the product uses.
PROTOCOLS = {
    "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b": (NNHandshakePattern, 0),
    "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b": (XXHandshakePattern, 3),
}
MAX_MESSAGE_BYTES = 65535
MAX_PLAINTEXT_BYTES = MAX_MESSAGE_BYTES - 16
SEND_SIZES = (0, 1, 1000, MAX_PLAINTEXT_BYTES)


class PeerError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("dissononce_peer: error: %s\n" % message)
        sys.exit(1)


def parse_args(argv):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("initiator", "responder"), required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--connect", metavar="HOST:PORT")
    where.add_argument("--listen", metavar="HOST:PORT", help="port 0 picks a free port; printed as LISTENING <port>")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), required=True)
    parser.add_argument("--psk", metavar="HEX", required=True)
    parser.add_argument("--prologue", metavar="HEX", default="")
    parser.add_argument("--static-secret", metavar="HEX", help="our 32-byte X25519 secret key (XX)")
    parser.add_argument("--expect-remote-static", metavar="HEX", help="fail unless the peer's static key is this")
    parser.add_argument("--send", metavar="N", type=int, help="send N messages and check their echoes instead of echoing")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=10.0, help="socket timeout (default 10)")
    args = parser.parse_args(argv)
    if args.send is not None and args.send < 0:
        parser.error("--send must be >= 0")
    return args


def from_hex(text, name, length=None):
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise PeerError("%s is not hex" % name)
    if length is not None and len(data) != length:
        raise PeerError("%s must be %d bytes, got %d" % (name, length, len(data)))
    return data


def host_port(text, name):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PeerError("%s must be HOST:PORT, got %r" % (name, text))
    return host, int(port)


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def recv_exactly(sock, count, what):
    """count bytes, or None on EOF before the first byte; EOF inside is an error."""
    chunks = []
    remaining = count
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            if remaining == count:
                return None
            raise PeerError("connection ended inside %s" % what)
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, what):
    """The next frame body, or None on a clean EOF between frames."""
    header = recv_exactly(sock, 2, "the length of " + what)
    if header is None:
        return None
    (length,) = struct.unpack(">H", header)
    if length == 0:
        return b""
    body = recv_exactly(sock, length, what)
    if body is None:
        raise PeerError("connection ended inside %s" % what)
    return body


def write_frame(sock, body):
    if len(body) > MAX_MESSAGE_BYTES:
        raise PeerError("message of %d bytes does not fit a frame" % len(body))
    sock.sendall(struct.pack(">H", len(body)) + bytes(body))


def message_for(index):
    """Message `index` of --send: sizes 0, 1, 1000, 65519 in turn, bytes derived from the index."""
    size = SEND_SIZES[index % len(SEND_SIZES)]
    block = hashlib.blake2b(b"noise-cfg interop message %d" % index).digest()
    return (block * (size // len(block) + 1))[:size]


def build_handshake(protocol_name):
    base, placement = PROTOCOLS[protocol_name]
    pattern = PSKPatternModifier(placement).modify(base())
    symmetric = SymmetricState(CipherState(ChaChaPolyCipher()), Blake2bHash())
    return pattern, HandshakeState(symmetric, X25519DH())


class Config(object):
    """The checked arguments, parsed before any socket is opened."""

    def __init__(self, args):
        self.is_initiator = args.role == "initiator"
        self.psk = from_hex(args.psk, "--psk", 32)
        self.prologue = from_hex(args.prologue, "--prologue")
        self.expected = from_hex(args.expect_remote_static, "--expect-remote-static", 32) if args.expect_remote_static else None
        self.protocol = args.protocol
        self.pattern, self.handshake = build_handshake(args.protocol)
        self.static = None
        if "s" in [token for message in self.pattern.message_patterns for token in message]:
            if not args.static_secret:
                raise PeerError("%s needs --static-secret" % args.protocol)
            secret = from_hex(args.static_secret, "--static-secret", 32)
            self.static = X25519DH().generate_keypair(PrivateKey(secret))
        elif self.expected is not None:
            raise PeerError("--expect-remote-static given but %s carries no static key" % args.protocol)


def run_handshake(sock, config):
    pattern, handshake, is_initiator, expected, static = (
        config.pattern, config.handshake, config.is_initiator, config.expected, config.static)
    handshake.initialize(pattern, is_initiator, config.prologue, s=static, psks=(config.psk,))
    if handshake.protocol_name != config.protocol:
        raise PeerError("dissononce built %s, not %s" % (handshake.protocol_name, config.protocol))

    ciphers = None
    checked_remote = False
    for index in range(len(pattern.message_patterns)):
        if (index % 2 == 0) == is_initiator:
            message = bytearray()
            ciphers = handshake.write_message(b"", message)
            write_frame(sock, message)
        else:
            message = read_frame(sock, "handshake message %d" % (index + 1))
            if message is None:
                raise PeerError("the peer closed the connection during the handshake (before message %d)" % (index + 1))
            payload = bytearray()
            try:
                ciphers = handshake.read_message(message, payload)
            except DecryptFailedException:
                raise PeerError("handshake message %d did not decrypt (wrong PSK, prologue or key?)" % (index + 1))
            if len(payload) != 0:
                raise PeerError("handshake message %d has an unexpected payload of %d bytes" % (index + 1, len(payload)))
        if expected is not None and not checked_remote and handshake.rs is not None:
            checked_remote = True
            if not hmac.compare_digest(handshake.rs.data, expected):
                raise PeerError("the peer's static key %s is not the expected %s" % (handshake.rs.data.hex(), expected.hex()))
    if ciphers is None:
        raise PeerError("the handshake did not finish")
    if expected is not None and not checked_remote:
        raise PeerError("the handshake ended without the peer's static key")

    emit("HANDSHAKE_HASH " + handshake.symmetricstate.get_handshake_hash().hex())
    if static is not None:
        emit("LOCAL_STATIC " + static.public.data.hex())
    if handshake.rs is not None:
        emit("REMOTE_STATIC " + handshake.rs.data.hex())
    initiator_to_responder, responder_to_initiator = ciphers
    if is_initiator:
        return initiator_to_responder, responder_to_initiator
    return responder_to_initiator, initiator_to_responder


def decrypt(receiver, ciphertext, what):
    try:
        return receiver.decrypt_with_ad(b"", ciphertext)
    except DecryptFailedException:
        raise PeerError("%s did not decrypt" % what)


def echo(sock, sender, receiver):
    count = 0
    while True:
        ciphertext = read_frame(sock, "transport message %d" % (count + 1))
        if ciphertext is None:
            break
        plaintext = decrypt(receiver, ciphertext, "transport message %d" % (count + 1))
        write_frame(sock, sender.encrypt_with_ad(b"", plaintext))
        count += 1
    sock.shutdown(socket.SHUT_WR)
    emit("ECHOED %d" % count)


def send_and_check(sock, sender, receiver, count):
    for index in range(count):
        message = message_for(index)
        write_frame(sock, sender.encrypt_with_ad(b"", message))
        ciphertext = read_frame(sock, "the echo of message %d" % (index + 1))
        if ciphertext is None:
            raise PeerError("the peer closed the connection instead of echoing message %d" % (index + 1))
        echoed = decrypt(receiver, ciphertext, "the echo of message %d" % (index + 1))
        if echoed != message:
            raise PeerError("the echo of message %d (%d bytes) differs: got %d bytes" % (index + 1, len(message), len(echoed)))
    sock.shutdown(socket.SHUT_WR)
    extra = read_frame(sock, "a message after the echoes")
    if extra is not None:
        raise PeerError("the peer sent a message after the last echo")
    emit("SENT_OK %d" % count)


def open_socket(args):
    if args.connect:
        host, port = host_port(args.connect, "--connect")
        return socket.create_connection((host, port), timeout=args.timeout)
    host, port = host_port(args.listen, "--listen")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((host, port))
        listener.listen(1)
        listener.settimeout(args.timeout)
        emit("LISTENING %d" % listener.getsockname()[1])
        sock, _ = listener.accept()
    finally:
        listener.close()
    sock.settimeout(args.timeout)
    return sock


def main(argv):
    args = parse_args(argv)
    try:
        config = Config(args)
        sock = open_socket(args)
        try:
            sender, receiver = run_handshake(sock, config)
            if args.send is None:
                echo(sock, sender, receiver)
            else:
                send_and_check(sock, sender, receiver, args.send)
        finally:
            sock.close()
    except PeerError as error:
        sys.stderr.write("dissononce_peer: %s\n" % error)
        return 1
    except socket.timeout:
        sys.stderr.write("dissononce_peer: timed out after %g s\n" % args.timeout)
        return 1
    except OSError as error:
        sys.stderr.write("dissononce_peer: socket error: %s\n" % (error.strerror or error))
        return 1
    except Exception as error:  # anything dissononce or cryptography raises
        sys.stderr.write("dissononce_peer: %s: %s\n" % (type(error).__name__, error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
