import pytest

from hybridroute.redaction.validators import iban_check_digits, iban_valid, luhn_check_digit, luhn_valid


@pytest.mark.parametrize(
    "number",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559", "378282246310005", "2221000000000009"],
)
def test_luhn_accepts_valid_cards(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "1234567812345678", "", "7"])
def test_luhn_rejects_invalid_numbers(number: str) -> None:
    assert not luhn_valid(number)


def test_luhn_check_digit_completes_a_number() -> None:
    assert luhn_check_digit("411111111111111") == "1"
    assert luhn_valid("453201511283036" + luhn_check_digit("453201511283036"))


@pytest.mark.parametrize(
    "iban",
    ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "FR1420041010050500013M02606", "gb82west12345698765432"],
)
def test_iban_accepts_valid(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    ["GB83 WEST 1234 5698 7654 32", "DE8937040044053201300", "XX82WEST12345698765432", "GB82-WEST-1234", ""],
)
def test_iban_rejects_wrong_checksum_length_or_country(iban: str) -> None:
    assert not iban_valid(iban)


def test_iban_check_digits_round_trip() -> None:
    assert iban_check_digits("GB", "WEST12345698765432") == "82"
    assert iban_valid("NL" + iban_check_digits("NL", "ABNA0417164300") + "ABNA0417164300")


def mod97_passes(iban: str) -> bool:
    """ISO 7064 mod 97-10 alone, computed here without the module's helpers: letters as 10..35."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def with_check_digits(country: str, bban: str) -> str:
    return country + iban_check_digits(country, bban) + bban


@pytest.mark.parametrize(
    "iban",
    [
        with_check_digits("GB", "WEST1234569876543"),  # 21 characters, GB needs 22
        with_check_digits("GB", "WEST123456987654321"),  # 23
        with_check_digits("DE", "37040044053201300"),  # 21, DE needs 22
        with_check_digits("DE", "86011117947"),  # 15, Norway's length, not Germany's
        with_check_digits("TR", "0006100519"),  # 14: shorter than any IBAN
        with_check_digits("TR", "0" * 31),  # 35: longer than any IBAN
        with_check_digits("T1", "0006100519786457841326"),  # the country code is not two letters
    ],
)
def test_iban_rejects_a_passing_checksum_at_the_wrong_length_or_in_an_unknown_country(iban: str) -> None:
    assert mod97_passes(iban)  # the checksum alone would let it through: only the length rules refuse it
    assert not iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "TR330006100519786457841326",
        "UA213223130000026007233566001",
        "RS35260005601001611379",
        "BR1800360305000010009795493C1",
        "SA0380000000608010167519",
        "AE070331234567890123456",
        with_check_digits("XX", "WEST12345698765432"),  # any two letters: the table lists only the common ones
    ],
)
def test_iban_accepts_a_country_outside_the_length_table_at_15_to_34_characters(iban: str) -> None:
    assert iban_valid(iban)
    assert not iban_valid(iban[:-1] + str((int(iban[-1], 36) + 1) % 10))  # one character off fails mod 97


@pytest.mark.parametrize(
    ("country", "bban"), [("GB", "WEST12345698765432"), ("DE", "370400440532013000"), ("NO", "86011117947")]
)
def test_the_same_construction_at_the_country_length_is_valid(country: str, bban: str) -> None:
    assert iban_valid(with_check_digits(country, bban))  # so the cases above fail for their length alone
