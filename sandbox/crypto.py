"""Message-push signatures and the AES scheme of wechat-api.md §7.2–§7.5, written for the sandbox.

The sandbox signs and encrypts what it pushes with this module and nothing from ``layers/``, so a
bug in the product's verifier cannot be mirrored here. Checked against the official vectors
V1 and V2 of §7.7 in ``tests/sandbox/test_crypto.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32
_ENCODING_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")


class CryptoError(ValueError):
    """A key, ciphertext, padding or AppID that does not check out."""


def signature(*parts: str) -> str:
    """sha1 of the lexicographically sorted parts, concatenated, as lowercase hex.

    With (token, timestamp, nonce) it is the push ``signature``; adding the ``Encrypt`` value
    gives ``msg_signature``.
    """
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8"), usedforsecurity=False).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AESKey: Base64_Decode(EncodingAESKey + "=")."""
    if _ENCODING_AES_KEY.fullmatch(encoding_aes_key) is None:
        raise CryptoError("EncodingAESKey must be 43 characters of [A-Za-z0-9]")
    return base64.b64decode(encoding_aes_key + "=")


def pkcs7_pad(data: bytes, block: int = BLOCK) -> bytes:
    """Pad to a multiple of ``block`` with n bytes of value n (a full block when aligned)."""
    n = block - len(data) % block
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block: int = BLOCK) -> bytes:
    """Strip the padding added by :func:`pkcs7_pad`; reject a malformed one."""
    if not data or len(data) % block:
        raise CryptoError("padded data is not a whole number of blocks")
    n = data[-1]
    if not 1 <= n <= block or data[-n:] != bytes([n]) * n:
        raise CryptoError("bad PKCS#7 padding")
    return data[:-n]


def encrypt(encoding_aes_key: str, message: bytes, appid: str, random16: bytes | None = None) -> str:
    """``Encrypt`` for ``message``: AES-256-CBC (IV = key[:16]) over
    random(16) || len(message) as 4 bytes big-endian || message || appid, PKCS#7-padded to 32.

    ``random16`` is fixed only to reproduce published vectors; by default it is random bytes.
    """
    key = aes_key(encoding_aes_key)
    prefix = os.urandom(16) if random16 is None else random16
    if len(prefix) != 16:
        raise CryptoError("the random prefix must be 16 bytes")
    plain = pkcs7_pad(prefix + struct.pack(">I", len(message)) + message + appid.encode("utf-8"))
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(encoding_aes_key: str, encrypted: str, appid: str | None = None) -> tuple[bytes, str]:
    """Inverse of :func:`encrypt`: returns (message, appid found after it).

    When ``appid`` is given, a different trailing AppID raises CryptoError.
    """
    key = aes_key(encoding_aes_key)
    try:
        cipher_bytes = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("Encrypt is not base64") from exc
    if not cipher_bytes or len(cipher_bytes) % 16:
        raise CryptoError("ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = pkcs7_unpad(decryptor.update(cipher_bytes) + decryptor.finalize())
    if len(plain) < 20:
        raise CryptoError("plaintext too short")
    (length,) = struct.unpack(">I", plain[16:20])
    message = plain[20 : 20 + length]
    if len(message) != length:
        raise CryptoError("message length exceeds the plaintext")
    found = plain[20 + length :].decode("utf-8", errors="replace")
    if appid is not None and found != appid:
        raise CryptoError("AppID in the ciphertext does not match")
    return message, found
