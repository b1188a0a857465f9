"""WeChat message-push cryptography: the SHA-1 signatures and the AES scheme of wechat-api.md §7.5.

WeChat fixes the scheme, weaknesses included: SHA-1, AES-256-CBC with the IV taken from the
key, PKCS#7 padding to 32 bytes (not AES's 16) and no MAC. Integrity comes only from
``msg_signature``, so callers verify it before they call :meth:`WxCrypto.decrypt`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wxsub.errors import BadSignature, ConfigurationError

__all__ = ["WxCrypto", "signature", "signature_matches"]

_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{43}")
_PAD_BLOCK = 32
_RANDOM_LEN = 16
_HEADER = struct.Struct(">16sI")


def signature(token: str, *parts: str) -> str:
    """SHA-1 over ``token`` and ``parts`` sorted and concatenated, as lowercase hex.

    With (timestamp, nonce) this is the query's ``signature``; with (timestamp, nonce, Encrypt)
    it is ``msg_signature`` and a reply's ``MsgSignature``.
    """
    joined = "".join(sorted((token, *parts)))
    return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324 - WeChat's protocol prescribes SHA-1


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time equality that also takes non-ASCII input (``compare_digest`` on str raises)."""
    return hmac.compare_digest(expected.encode(), given.encode())


class WxCrypto:
    """AES encryption and decryption under one EncodingAESKey.

    The trailing id after the message is the AppID for a mini program (a corp id for WeCom);
    this class returns it and leaves the comparison to the caller.
    """

    __slots__ = ("_key",)

    def __init__(self, encoding_aes_key: str) -> None:
        if not _KEY_SHAPE.fullmatch(encoding_aes_key):
            raise ConfigurationError("an EncodingAESKey must be 43 characters from [A-Za-z0-9]")
        self._key = base64.b64decode(encoding_aes_key + "=")

    def __repr__(self) -> str:
        return "WxCrypto(<EncodingAESKey hidden>)"

    def encrypt(self, msg: str | bytes, appid: str, random16: bytes | None = None) -> str:
        """Base64 ciphertext of ``msg`` for ``appid``; ``random16`` is fixed only by tests."""
        prefix = secrets.token_bytes(_RANDOM_LEN) if random16 is None else random16
        if len(prefix) != _RANDOM_LEN:
            raise ValueError("random16 must be exactly 16 bytes")
        body = msg.encode() if isinstance(msg, str) else msg
        encryptor = self._cipher().encryptor()
        plain = _pad(_HEADER.pack(prefix, len(body)) + body + appid.encode())
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt_b64: str) -> tuple[bytes, str]:
        """``(msg, appid)`` from an ``Encrypt`` value.

        Raises ``BadSignature`` when the value is not a ciphertext under this key: bad base64, a
        length that is not whole AES blocks, PKCS#7 padding that does not check out (every pad
        byte must equal the pad length, 1..32), a length field past the end, or an id that is not
        UTF-8. A wrong key shows up as one of these, which is how key rotation finds the right one.
        """
        try:
            data = base64.b64decode(encrypt_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadSignature("Encrypt is not valid base64") from exc
        if not data or len(data) % 16:
            raise BadSignature("Encrypt is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        return _split(_unpad(decryptor.update(data) + decryptor.finalize()))

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))


def _pad(data: bytes) -> bytes:
    count = _PAD_BLOCK - len(data) % _PAD_BLOCK
    return data + bytes([count]) * count


def _unpad(data: bytes) -> bytes:
    count = data[-1]
    if not 1 <= count <= _PAD_BLOCK or data[-count:] != bytes([count]) * count:
        raise BadSignature("Encrypt does not decrypt under this EncodingAESKey (bad padding)")
    return data[:-count]


def _split(plain: bytes) -> tuple[bytes, str]:
    if len(plain) < _HEADER.size:
        raise BadSignature("Encrypt does not decrypt under this EncodingAESKey (too short)")
    _, length = _HEADER.unpack_from(plain)
    end = _HEADER.size + length
    if end > len(plain):
        raise BadSignature("Encrypt does not decrypt under this EncodingAESKey (bad length field)")
    try:
        appid = plain[end:].decode()
    except UnicodeDecodeError as exc:
        raise BadSignature("Encrypt does not decrypt under this EncodingAESKey (id is not UTF-8)") from exc
    return plain[_HEADER.size : end], appid
