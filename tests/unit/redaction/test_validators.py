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
