#!/usr/bin/env python3
"""An independent reader (and writer) of Heka's encryption format.

Written from docs/formats/encryption.md alone, with Python's standard library and the
`cryptography` package (Debian 12: python3-cryptography), to cross-check the C++
implementation against the document. It is a test tool, not a client.

  encryption_reader.py key KEYFILE                              print the verified fingerprint
  encryption_reader.py file KEYFILE FILE_ID CIPHERTEXT_PATH     plaintext to stdout
  encryption_reader.py name KEYFILE DIR_ID SEALED_HEX           the name to stdout
  encryption_reader.py target KEYFILE LINK_ID SEALED_HEX        the target to stdout
  encryption_reader.py seal-name KEYFILE DIR_ID NAME            sealed name, hex
  encryption_reader.py seal-target KEYFILE LINK_ID TARGET [--nonce HEX]   sealed target, hex
  encryption_reader.py seal-file KEYFILE FILE_ID PLAINTEXT_PATH [--nonce HEX]
                                                                stored bytes to stdout
  encryption_reader.py seal-key RAW_KEYFILE --passphrase-file F [--salt HEX] [--nonce HEX]
                       [--log2-n N]            the key wrapped with F's passphrase, as TOML

IDs are 32 hex digits. Every command takes --passphrase-file F for an "scrypt" key file (the
passphrase is the file's bytes without one trailing newline). With --nonce N (24 hex digits)
the sealing commands are deterministic: the header (or the target) uses N and block b uses
N + 1 + b (as a 96-bit big-endian integer); without it nonces are random. Any failure prints a
message on stderr and exits 1.
"""

import argparse
import hashlib
import os
import sys
import tomllib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

BLOCK = 4096
OVERHEAD = 12 + 16          # nonce + tag
SEALED_BLOCK = BLOCK + OVERHEAD
HEADER = 68
MAGIC = b"HKEF"


class FormatError(Exception):
    pass


# ---- The cell key and derived keys ----

def fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(b"heka key fingerprint v1" + key).digest()[:16]


def hkdf(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def content_key(key: bytes, file_id: bytes) -> bytes:
    return hkdf(key, b"heka content key v1" + file_id, 32)


def name_key(key: bytes, dir_id: bytes) -> bytes:
    return hkdf(key, b"heka name key v1" + dir_id, 64)


def gcm_open(key, nonce, sealed, aad, what):
    try:
        return AESGCM(key).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise FormatError(f"{what}: authentication failed") from None


# ---- Key files ----

def unhex(value, nbytes, field):
    try:
        b = bytes.fromhex(value)
    except (TypeError, ValueError):
        b = None
    if b is None or len(b) != nbytes or len(value) != 2 * nbytes:
        raise FormatError(f"{field} must be {2 * nbytes} hex digits")
    return b


def read_key_file(path, passphrase):
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise FormatError(f"key file: {e}") from None
    cell = doc.get("cell")
    if not isinstance(cell, str):
        raise FormatError("key file: cell missing")
    fp = unhex(doc.get("fingerprint"), 16, "key file: fingerprint")
    fmt = doc.get("format")
    if fmt == "raw":
        key = unhex(doc.get("key"), 32, "key file: key")
    elif fmt == "scrypt":
        if passphrase is None:
            raise FormatError("key file is wrapped: give --passphrase-file")
        n_log2, r, p = (doc.get(k) for k in ("scrypt_log2_n", "scrypt_r", "scrypt_p"))
        if not all(isinstance(v, int) and v > 0 for v in (n_log2, r, p)):
            raise FormatError("key file: scrypt parameters missing")
        salt = unhex(doc.get("salt"), 16, "key file: salt")
        nonce = unhex(doc.get("nonce"), 12, "key file: nonce")
        wrapped = unhex(doc.get("wrapped"), 48, "key file: wrapped")
        kek = Scrypt(salt=salt, length=32, n=2 ** n_log2, r=r, p=p).derive(passphrase)
        aad = b"heka wrapped key v1" + cell.encode() + b"\x00" + fp
        key = gcm_open(kek, nonce, wrapped, aad, "wrapped key (wrong passphrase?)")
    else:
        raise FormatError(f"key file: unknown format {fmt!r}")
    if fingerprint(key) != fp:
        raise FormatError("key file: the key does not have the fingerprint the file names")
    return key


def wrap_key(cell, key, passphrase, log2_n, salt, nonce):
    kek = Scrypt(salt=salt, length=32, n=2 ** log2_n, r=8, p=1).derive(passphrase)
    fp = fingerprint(key)
    wrapped = AESGCM(kek).encrypt(nonce, key, b"heka wrapped key v1" + cell.encode() + b"\x00" + fp)
    return (f'cell = "{cell}"\nfingerprint = "{fp.hex()}"\nformat = "scrypt"\n'
            f"scrypt_log2_n = {log2_n}\nscrypt_r = 8\nscrypt_p = 1\n"
            f'salt = "{salt.hex()}"\nnonce = "{nonce.hex()}"\nwrapped = "{wrapped.hex()}"\n')


# ---- Names and symlink targets ----

def open_name(key, dir_id, sealed):
    try:
        return AESSIV(name_key(key, dir_id)).decrypt(sealed, [dir_id])
    except InvalidTag:
        raise FormatError("name: authentication failed") from None


def seal_name(key, dir_id, name):
    return AESSIV(name_key(key, dir_id)).encrypt(name, [dir_id])


def open_target(key, link_id, sealed):
    if len(sealed) < 1 + OVERHEAD or sealed[0] != 1:
        raise FormatError("target: bad length or version")
    return gcm_open(content_key(key, link_id), sealed[1:13], sealed[13:],
                    link_id + b"symlink", "target")


def seal_target(key, link_id, target, nonce):
    return b"\x01" + nonce + AESGCM(content_key(key, link_id)).encrypt(
        nonce, target, link_id + b"symlink")


# ---- File contents ----

def block_aad(file_id, b, final):
    return file_id + b.to_bytes(8, "big") + bytes([1 if final else 0])


def open_file(key, file_id, data):
    if len(data) < HEADER + OVERHEAD:
        raise FormatError(f"file: stored size {len(data)} < {HEADER + OVERHEAD}")
    h = data[:HEADER]
    if h[0:4] != MAGIC or h[4] != 1 or h[5:8] != b"\0\0\0":
        raise FormatError("file: bad magic, version or reserved bytes")
    if h[8:24] != fingerprint(key):
        raise FormatError(f"file: written under key {h[8:24].hex()}, not this one")
    if h[24:40] != file_id:
        raise FormatError(f"file: header names file {h[24:40].hex()}")
    ck = content_key(key, file_id)
    gcm_open(ck, h[40:52], h[52:68], h[0:40], "file header")
    r = len(data) - HEADER
    nblocks = -(-r // SEALED_BLOCK)
    last = r - SEALED_BLOCK * (nblocks - 1)
    if last < OVERHEAD or (nblocks > 1 and last == OVERHEAD):
        raise FormatError(f"file: stored size {len(data)} is not a valid size")
    out = []
    for b in range(nblocks):
        s = data[HEADER + b * SEALED_BLOCK:HEADER + (b + 1) * SEALED_BLOCK]
        final = b == nblocks - 1
        out.append(gcm_open(ck, s[:12], s[12:], block_aad(file_id, b, final), f"block {b}"))
    return b"".join(out)


def add_nonce(nonce, k):
    return ((int.from_bytes(nonce, "big") + k) % 2 ** 96).to_bytes(12, "big")


def seal_file(key, file_id, plain, nonce):
    ck = AESGCM(content_key(key, file_id))
    h = MAGIC + b"\x01\0\0\0" + fingerprint(key) + file_id
    out = [h, nonce, ck.encrypt(nonce, b"", h)]
    nblocks = max(1, -(-len(plain) // BLOCK))
    for b in range(nblocks):
        n = add_nonce(nonce, 1 + b)
        p = plain[b * BLOCK:(b + 1) * BLOCK]
        out += [n, ck.encrypt(n, p, block_aad(file_id, b, b == nblocks - 1))]
    return b"".join(out)


# ---- Command line ----

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["key", "file", "name", "target",
                                        "seal-name", "seal-target", "seal-file", "seal-key"])
    ap.add_argument("keyfile")
    ap.add_argument("id", nargs="?", help="file, directory or symlink ID (32 hex digits)")
    ap.add_argument("arg", nargs="?")
    ap.add_argument("--passphrase-file")
    ap.add_argument("--nonce", help="24 hex digits (sealing only)")
    ap.add_argument("--salt", help="32 hex digits (seal-key only)")
    ap.add_argument("--log2-n", type=int, default=17, help="scrypt N = 2^this (seal-key only)")
    a = ap.parse_args(argv)

    passphrase = None
    if a.passphrase_file:
        with open(a.passphrase_file, "rb") as f:
            passphrase = f.read()
        if passphrase.endswith(b"\n"):
            passphrase = passphrase[:-1]
    key = read_key_file(a.keyfile, None if a.command == "seal-key" else passphrase)
    nonce = unhex(a.nonce, 12, "--nonce") if a.nonce else os.urandom(12)
    if a.command == "seal-key":
        if passphrase is None:
            ap.error("seal-key needs --passphrase-file")
        salt = unhex(a.salt, 16, "--salt") if a.salt else os.urandom(16)
        with open(a.keyfile, "rb") as f:
            cell = tomllib.load(f)["cell"]
        print(wrap_key(cell, key, passphrase, a.log2_n, salt, nonce), end="")
        return
    if a.command == "key":
        print(fingerprint(key).hex())
        return
    if a.id is None or a.arg is None:
        ap.error(f"{a.command} needs an ID and one more argument")
    obj_id = unhex(a.id, 16, "the ID")
    out = sys.stdout.buffer
    if a.command == "file":
        with open(a.arg, "rb") as f:
            out.write(open_file(key, obj_id, f.read()))
    elif a.command == "name":
        out.write(open_name(key, obj_id, bytes.fromhex(a.arg)) + b"\n")
    elif a.command == "target":
        out.write(open_target(key, obj_id, bytes.fromhex(a.arg)) + b"\n")
    elif a.command == "seal-name":
        print(seal_name(key, obj_id, os.fsencode(a.arg)).hex())
    elif a.command == "seal-target":
        print(seal_target(key, obj_id, os.fsencode(a.arg), nonce).hex())
    elif a.command == "seal-file":
        with open(a.arg, "rb") as f:
            out.write(seal_file(key, obj_id, f.read(), nonce))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (FormatError, OSError, ValueError) as e:
        print(f"encryption_reader: {e}", file=sys.stderr)
        sys.exit(1)
