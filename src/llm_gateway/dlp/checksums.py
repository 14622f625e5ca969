"""Check digits and checksums that turn a pattern match into a confident finding.

A sixteen-digit number is a card number only if its Luhn digit agrees; an
IBAN only if mod-97 leaves 1; a Bitcoin address only if its checksum does.
Each function here takes the candidate's text, does a bounded amount of work
(callers cap the input length) and answers yes or no. Nothing here allocates
per call beyond the candidate itself, and nothing depends on third-party code:
the algorithms are small, public and stable.
"""

from __future__ import annotations

import hashlib

# --- Luhn (ISO/IEC 7812) -----------------------------------------------------


def luhn_check_digit(payload: str) -> int:
    """The digit that, appended to ``payload`` (digits), makes it pass the Luhn check."""
    total = 0
    for i, char in enumerate(reversed(payload)):
        value = ord(char) - 48
        if i % 2 == 0:  # doubled: it sits just left of the check digit, or every other one
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return (10 - total % 10) % 10


def luhn_valid(digits: str) -> bool:
    """True when the last digit of ``digits`` is the Luhn check digit of the rest."""
    if not digits or not digits.isdigit():
        return False
    return luhn_check_digit(digits[:-1]) == ord(digits[-1]) - 48


# --- IBAN (ISO 13616, mod-97 of ISO 7064) ------------------------------------

# Total IBAN length by country, from the SWIFT IBAN registry (release 100, 2025:
# 89 countries; territories such as French Guiana use their parent's code).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(compact: str) -> bool:
    """``compact`` is an IBAN without separators, upper case."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected or not compact[2:4].isdigit():
        return False
    if not compact.isalnum() or not compact.isascii():
        return False
    return _mod97(compact[4:] + compact[:4]) == 1


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits of the IBAN with this country code and account number."""
    return f"{98 - _mod97(bban + country + '00'):02d}"


def _mod97(alphanumeric: str) -> int:
    remainder = 0
    for char in alphanumeric:
        # Letters count as two digits (A=10 .. Z=35); fold as we go to keep ints small.
        value = int(char, 36)
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder


# --- Bitcoin: Base58Check (legacy P2PKH/P2SH) and Bech32/Bech32m (SegWit) ------

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: i for i, char in enumerate(_BASE58)}


def base58check_payload(text: str) -> bytes | None:
    """The payload of a Base58Check string (version byte included), or None if invalid."""
    number = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    leading_zeros = len(text) - len(text.lstrip("1"))
    raw = b"\x00" * leading_zeros + body
    if len(raw) < 5:
        return None
    payload, checksum = raw[:-4], raw[-4:]
    digest = hashlib.sha256(hashlib.sha256(payload).digest()).digest()
    return payload if digest[:4] == checksum else None


def bitcoin_base58_valid(text: str) -> bool:
    """A mainnet P2PKH (version 0x00) or P2SH (0x05) address with a good checksum."""
    payload = base58check_payload(text)
    return payload is not None and len(payload) == 21 and payload[0] in (0x00, 0x05)


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {char: i for i, char in enumerate(_BECH32)}
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = ((checksum & 0x1FFFFFF) << 5) ^ value
        for i, generator in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def bitcoin_bech32_valid(text: str) -> bool:
    """A mainnet SegWit address: bech32 for witness v0, bech32m for v1 and later (BIP 173/350)."""
    if text != text.lower() and text != text.upper():
        return False
    text = text.lower()
    hrp, sep, data_part = text.rpartition("1")
    if hrp != "bc" or not sep or len(data_part) < 7:
        return False
    data = [_BECH32_INDEX.get(char, -1) for char in data_part]
    if min(data) < 0:
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    constant = _bech32_polymod(expanded + data)
    witness_version = data[0]
    if witness_version > 16:
        return False
    wanted = _BECH32_CONST if witness_version == 0 else _BECH32M_CONST
    if constant != wanted:
        return False
    program_bits = (len(data) - 7) * 5  # data minus version and the 6 checksum symbols
    program_bytes = program_bits // 8
    if witness_version == 0:
        return program_bytes in (20, 32)
    return 2 <= program_bytes <= 40


# --- Ethereum: EIP-55 mixed-case checksum (needs Keccak-256, not SHA3-256) ----


def _keccak_round_constants() -> tuple[int, ...]:
    """The 24 iota constants, generated by the LFSR of the Keccak specification."""
    constants = []
    state = 1
    for _ in range(24):
        constant = 0
        for j in range(7):
            if state & 1:
                constant |= 1 << ((1 << j) - 1)
            state = ((state << 1) ^ 0x171) if state & 0x80 else (state << 1)
        constants.append(constant)
    return tuple(constants)


def _keccak_rotations() -> tuple[tuple[int, ...], ...]:
    """Rotation offsets r[x][y] of the rho step."""
    offsets = [[0] * 5 for _ in range(5)]
    x, y = 1, 0
    for t in range(24):
        offsets[x][y] = ((t + 1) * (t + 2) // 2) % 64
        x, y = y, (2 * x + 3 * y) % 5
    return tuple(tuple(row) for row in offsets)


_RC = _keccak_round_constants()
_ROT = _keccak_rotations()
_MASK = (1 << 64) - 1


def _keccak_f(lanes: list[list[int]]) -> None:
    for constant in _RC:
        c = [lanes[x][0] ^ lanes[x][1] ^ lanes[x][2] ^ lanes[x][3] ^ lanes[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ (((c[(x + 1) % 5] << 1) | (c[(x + 1) % 5] >> 63)) & _MASK)
             for x in range(5)]  # fmt: skip
        for x in range(5):
            for y in range(5):
                lanes[x][y] ^= d[x]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                r = _ROT[x][y]
                value = lanes[x][y]
                rotated = ((value << r) | (value >> (64 - r))) & _MASK if r else value
                b[y][(2 * x + 3 * y) % 5] = rotated
        for x in range(5):
            for y in range(5):
                lanes[x][y] = b[x][y] ^ ((~b[(x + 1) % 5][y]) & b[(x + 2) % 5][y])
        lanes[0][0] ^= constant


def keccak256(message: bytes) -> bytes:
    """Keccak-256 as Ethereum uses it (original padding 0x01, not SHA-3's 0x06)."""
    rate = 136
    padded = bytearray(message)
    padded.append(0x01)
    while len(padded) % rate:
        padded.append(0)
    padded[-1] |= 0x80
    lanes = [[0] * 5 for _ in range(5)]
    for offset in range(0, len(padded), rate):
        block = padded[offset : offset + rate]
        for i in range(rate // 8):
            lanes[i % 5][i // 5] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _keccak_f(lanes)
    return b"".join(lanes[i % 5][i // 5].to_bytes(8, "little") for i in range(4))


def eip55_valid(address: str) -> bool:
    """True for a mixed-case ``0x`` address whose letter cases match its EIP-55 checksum.

    All-lower or all-upper addresses carry no checksum, so they are not
    accepted here; a separate, context-gated rule covers them.
    """
    body = address[2:] if address[:2] in ("0x", "0X") else address
    if len(body) != 40:
        return False
    try:
        int(body, 16)
    except ValueError:
        return False
    if body == body.lower() or body == body.upper():
        return False
    digest = keccak256(body.lower().encode("ascii")).hex()
    for char, nibble in zip(body, digest[:40], strict=True):
        if char.isalpha() and (int(nibble, 16) >= 8) != char.isupper():
            return False
    return True
