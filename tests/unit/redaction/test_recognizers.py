import re

import pytest

from hybridroute.redaction import RedactionConfig, Redactor


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(RedactionConfig())


def found(redactor: Redactor, text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.entity) for s in redactor.find(text)]


POSITIVES = [
    ("mail me at john.doe+bank@mail.example.co.uk now", "john.doe+bank@mail.example.co.uk", "EMAIL"),
    ("contact: J_SMITH@CORP.ACME-BANK.DE.", "J_SMITH@CORP.ACME-BANK.DE", "EMAIL"),
    ("call (415) 555-0132 today", "(415) 555-0132", "PHONE"),
    ("call 415.555.0132", "415.555.0132", "PHONE"),
    ("tel: +1-415-555-0132", "+1-415-555-0132", "PHONE"),
    ("ring 020 7946 0958 please", "020 7946 0958", "PHONE"),
    ("mobile 07700 900123", "07700 900123", "PHONE"),
    ("on +44 20 7946 0958.", "+44 20 7946 0958", "PHONE"),
    ("call +33 1 23 45 67 89 10 min ago", "+33 1 23 45 67 89", "PHONE"),
    ("or +91 98765 43210", "+91 98765 43210", "PHONE"),
    ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111", "CARD"),
    ("card 4111-1111-1111-1111", "4111-1111-1111-1111", "CARD"),
    ("amex 3782 822463 10005", "3782 822463 10005", "CARD"),
    ("mc 5500005555555559 10 min", "5500005555555559", "CARD"),
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32", "IBAN"),
    ("to DE89370400440532013000.", "DE89370400440532013000", "IBAN"),
    ("SSN: 123-45-6789", "123-45-6789", "SSN"),
    ("social security number 123 45 6789", "123 45 6789", "SSN"),
    ("my ssn is 123456789", "123456789", "SSN"),
    ("NI number AB 12 34 56 C", "AB 12 34 56 C", "SSN"),
    ("account 12345678 is locked", "12345678", "ACCOUNT"),
    ("acct #AC-99812", "AC-99812", "ACCOUNT"),
    ("a/c no. 12345678", "12345678", "ACCOUNT"),
    ("account number: 0012-3456-78", "0012-3456-78", "ACCOUNT"),
    ("order #A1B2C3D4 late", "A1B2C3D4", "ORDER"),
    ("where is ORD-2024-558812?", "ORD-2024-558812", "ORDER"),
    ("order number 55123", "55123", "ORDER"),
    ("see https://example.com/orders/123?id=4.", "https://example.com/orders/123?id=4", "URL"),
    ("go to www.my-site.org/reset, then", "www.my-site.org/reset", "URL"),
    ("on example.io/p/12 it says", "example.io/p/12", "URL"),
    ("cc @jane_doe99 please", "@jane_doe99", "HANDLE"),
    ("my name is John Smith and", "John Smith", "PERSON"),
    ("Hi, this is Anna from", "Anna", "PERSON"),
    ("ask Mr. O'Brien", "O'Brien", "PERSON"),
    ("Dr Mary McDonald called", "Mary McDonald", "PERSON"),
    ("it broke again. Thanks, Priya", "Priya", "PERSON"),
    ("Regards,\nAhmed Smith-Jones", "Ahmed Smith-Jones", "PERSON"),
]


@pytest.mark.parametrize(("text", "value", "entity"), POSITIVES)
def test_recognizes_customer_service_formats(redactor: Redactor, text: str, value: str, entity: str) -> None:
    assert (value, entity) in found(redactor, text)


NEGATIVES = [
    "I paid $1,250.00 on 12/03/2024 at 10:45",
    "it arrived on 2024-03-15, 15.03.2024",
    "flight UA 1234 then flight 1701, seat 14C, gate B22",
    "card ending 1234 and account ending in 4321",
    "an order of 12 items; my order 2 days ago; order on Monday",
    "my account balance is 250 and I've had the account since 2019",
    "version 2.3.1, 45% fee, zip 94107, room 1205",
    "card 4111 1111 1111 1112 fails Luhn",
    "IBAN GB83 WEST 1234 5698 7654 32 fails mod 97",
    "SSN 000-12-3456 and 666-12-3456 are never issued",
    "meet @ 5pm, email me, e.g. this, U.S. travel",
    "This is Ridiculous. Thanks, United! I'm Cancelled Flightled",
    "Mr Account is not a name, nor is Thanks. Followed.",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_leaves_non_personal_numbers_and_words(redactor: Redactor, text: str) -> None:
    assert found(redactor, text) == []


def test_handle_is_not_taken_from_an_email(redactor: Redactor) -> None:
    assert found(redactor, "write to jane@example.com") == [("jane@example.com", "EMAIL")]


def test_chance_luhn_window_loses_to_the_ssn_and_card_it_straddles(redactor: Redactor) -> None:
    text = "social security number 789 34 4968 4880 4495 8733 1378 miles"
    # "4968 4880 4495 8733" is Luhn-valid by chance; covering the most characters keeps both real entities.
    assert found(redactor, text) == [("789 34 4968", "SSN"), ("4880 4495 8733 1378", "CARD")]


# Shapes a review found leaking: each is replaced whole by its placeholder, and no digit run of it is left.
WHOLE = [
    ("call +33 (0)1 23 45 67 89 today", "+33 (0)1 23 45 67 89", "PHONE"),
    ("call +33 (0)6 12 34 56 78", "+33 (0)6 12 34 56 78", "PHONE"),
    ("call +31 (0)20 123 4567", "+31 (0)20 123 4567", "PHONE"),
    ("call +41 (0)44 123 45 67.", "+41 (0)44 123 45 67", "PHONE"),
    ("call +49 (0)30 12345678", "+49 (0)30 12345678", "PHONE"),
    ("call +33 (0)1 23 45 67 89 10 min ago", "+33 (0)1 23 45 67 89", "PHONE"),
    ("call 0049 30 12345678", "0049 30 12345678", "PHONE"),
    ("call 0033 6 12 34 56 78", "0033 6 12 34 56 78", "PHONE"),
    ("call 00447700900123", "00447700900123", "PHONE"),
    ("phone 0044 20 7946 0958", "0044 20 7946 0958", "PHONE"),
    ("tel:0031 20 123 4567", "0031 20 123 4567", "PHONE"),
    ("phone 0044 (0)20 7946 0958", "0044 (0)20 7946 0958", "PHONE"),
    ("call 0033 1 23 45 67 89 10 min ago", "0033 1 23 45 67 89", "PHONE"),
    ("tel: 415-555-0132x12", "415-555-0132x12", "PHONE"),
    ("call 415/555-0132 today", "415/555-0132", "PHONE"),
    ("email _john@example.com", "_john@example.com", "EMAIL"),
    ("email -john@example.com", "-john@example.com", "EMAIL"),
    ("email to: o'brien@example.com", "o'brien@example.com", "EMAIL"),
    ("card 4111.1111.1111.1111 declined", "4111.1111.1111.1111", "CARD"),
    ("amex 3782.822463.10005", "3782.822463.10005", "CARD"),
    ("iban GB82  WEST 1234 5698 7654 32", "GB82  WEST 1234 5698 7654 32", "IBAN"),
    ("IBAN GB82-WEST-1234-5698-7654-32.", "GB82-WEST-1234-5698-7654-32", "IBAN"),
    ("to DE89-3704-0044-0532-0130-00 now", "DE89-3704-0044-0532-0130-00", "IBAN"),
    # An extension after a British or international number (and written out after any number).
    ("call +44 20 7946 0958 ext. 123 today", "+44 20 7946 0958 ext. 123", "PHONE"),
    ("call +44 20 7946 0958x12 today", "+44 20 7946 0958x12", "PHONE"),
    ("call +1 415 555 0132 ext 7 today", "+1 415 555 0132 ext 7", "PHONE"),
    ("call +33 1 23 45 67 89 ext. 45.", "+33 1 23 45 67 89 ext. 45", "PHONE"),
    ("ring 020 7946 0958 ext 12 please", "020 7946 0958 ext 12", "PHONE"),
    ("tel: 415-555-0132 ext. 12", "415-555-0132 ext. 12", "PHONE"),
    ("tel: +44 20 7946 0958, ext. 123", "+44 20 7946 0958, ext. 123", "PHONE"),
    ("tel: 0049 30 12345678 Ext: 5", "0049 30 12345678 Ext: 5", "PHONE"),
    ("tel: 415-555-0132 x12", "415-555-0132 x12", "PHONE"),
    # Hyphens with a space on each side.
    ("call 415 - 555 - 0132 today", "415 - 555 - 0132", "PHONE"),
    ("call (415) 555 - 0132 today", "(415) 555 - 0132", "PHONE"),
    ("call +1 - 415 - 555 - 0132 today", "+1 - 415 - 555 - 0132", "PHONE"),
    # A trunk 0 after the country code, without brackets.
    ("call +44 020 7946 0958 today", "+44 020 7946 0958", "PHONE"),
    ("call +33 01 23 45 67 89 today", "+33 01 23 45 67 89", "PHONE"),
    ("call +49 030 45925534 today", "+49 030 45925534", "PHONE"),
    ("call 0033 06 12 34 56 78", "0033 06 12 34 56 78", "PHONE"),
    ("call +44 020 7946 0958 ext 5", "+44 020 7946 0958 ext 5", "PHONE"),
]


@pytest.mark.parametrize(("text", "value", "entity"), WHOLE)
def test_reviewed_shapes_are_replaced_whole(redactor: Redactor, text: str, value: str, entity: str) -> None:
    result = redactor.redact(text)
    assert result.text == text.replace(value, f"<{entity}>")
    assert result.counts == {entity: 1}
    rest = text.replace(value, "")
    assert [c for c in result.text if c.isdigit()] == [c for c in rest if c.isdigit()]  # no digit of it left
    assert "@" not in result.text and "john" not in result.text and "brien" not in result.text


NEAR_MISSES = [
    "order 0012 arrived, code 0044 sent, ref 0033 12",
    "it cost $1,000.00 12 34 56 78 in total",
    "at 10:00 33 6 12 34 56 78 is no number",
    "version 0.0.1, version 00.12.3, build 4.1111.1111",
    "room 415/555 upstairs, pages 415/555, ratio 120/180",
    "on 12/25/2024, 2024/03/15 and 03/15/2024 at 10:45",
    "a 3x12 pack, 2x4 boards, 1.5 x 12",
    "00 and 44 are scores, 0049 alone, 0033 12",
    "ref 0099 12 34 56 78: 99 is no country code we know",
    "card 4111.1111.1111.1112 fails Luhn",
    "IBAN GB83-WEST-1234-5698-7654-32 fails mod 97, GB82-WEST-1234 is short",
    "it's o'clock, don't @ me, _ and - alone",
    "+49 30 is Berlin; +33 (0) means nothing alone",
    "ext. 123 alone, x12 alone, a 2 x 12 pack, extension 45 of the deadline",
    "scores 41 - 55 - 0132, pages 415 - 55, 12 - 34 - 5678, 1 - 2 - 3",
    "+44 0 and +33 01 mean nothing, +49 030 is Berlin",
    "on 12/03/2024 - 10:45 - 2 items, 10 min - 20 min",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_look_alikes_near_the_reviewed_shapes_stay(redactor: Redactor, text: str) -> None:
    assert found(redactor, text) == []


def test_a_number_after_a_trimmed_one_is_found_too(redactor: Redactor) -> None:
    text = "call +33 1 79 42 69 90 0033 6 76 09 33 25 please"
    assert found(redactor, text) == [("+33 1 79 42 69 90", "PHONE"), ("0033 6 76 09 33 25", "PHONE")]


def test_a_percentage_after_an_international_number_stays(redactor: Redactor) -> None:
    assert found(redactor, "+49 30 14136092 14% fee") == [("+49 30 14136092", "PHONE")]


def test_a_card_ending_before_a_british_number_does_not_join_it(redactor: Redactor) -> None:
    # "1719 020 6668": a "1" against the area code, apart from an exchange starting with 0, is no US number.
    assert found(redactor, "card ending 1719 020 6668 8396 here") == [("020 6668 8396", "PHONE")]
    text = "call 1-800-555-0199, 1 (800) 555-0199, 18005550199, 1800 555 0199, 1 415-555-0132 or 1-2990176298"
    assert [value for value, _ in found(redactor, text)] == [
        "1-800-555-0199",
        "1 (800) 555-0199",
        "18005550199",
        "1800 555 0199",
        "1 415-555-0132",
        "1-2990176298",
    ]


# A count or unit word after a complete number makes the digits before it a quantity, not a phone digit group.
QUANTITY_AFTER = [
    ("call +49 30 45925534 10 min ago", "+49 30 45925534", "10 min"),
    ("+49 30 45925534 10 min", "+49 30 45925534", "10 min"),
    ("+49 030 45925534 10 minutes", "+49 030 45925534", "10 minutes"),
    ("tel 0049 30 45925534 2 days ago", "0049 30 45925534", "2 days"),
    ("+49 30 45925534 3 times now", "+49 30 45925534", "3 times"),
    ("+39 06 1234 5678 20 minutes", "+39 06 1234 5678", "20 minutes"),
    ("+33 01 23 45 67 89 10 min", "+33 01 23 45 67 89", "10 min"),
    ("+49 30 45925534 15 hrs", "+49 30 45925534", "15 hrs"),
    ("+49 30 45925534 120 EUR", "+49 30 45925534", "120 EUR"),
]


@pytest.mark.parametrize(("text", "phone", "quantity"), QUANTITY_AFTER)
def test_a_quantity_after_an_international_number_stays(
    redactor: Redactor, text: str, phone: str, quantity: str
) -> None:
    assert found(redactor, text) == [(phone, "PHONE")]
    assert quantity in redactor.redact(text).text


def test_the_quantity_rule_and_its_documented_limits(redactor: Redactor) -> None:
    # German numbers run 6-13 digits: without a unit word the trailing group reads as part of the number.
    assert found(redactor, "call +49 30 45925534 10 please") == [("+49 30 45925534 10", "PHONE")]
    assert found(redactor, "call +49 30 4592 5534 hours") == [("+49 30 4592 5534", "PHONE")]  # 4 digits: no quantity
    # The limit: a number's own last group of 1-3 digits before a unit word is read as a quantity.
    assert found(redactor, "call +49 30 1234 56 hours") == [("+49 30 1234", "PHONE")]
    # Where the shorter number has no valid length the group stays in: "+33 1 23 45 67" has 8 digits, not 9.
    assert found(redactor, "call +33 1 23 45 67 89 days") == [("+33 1 23 45 67 89", "PHONE")]


def test_a_number_right_after_a_german_number_keeps_its_first_group(redactor: Redactor) -> None:
    # German numbers run 6-13 digits, so "0049 30 91114476 (911)" is a valid length too; the shorter
    # reading lets the number after it be covered whole.
    text = "0049 30 91114476 (911) 755 - 7577 and 0049 30 04397007 777.357.3137 now"
    assert found(redactor, text) == [
        ("0049 30 91114476", "PHONE"),
        ("(911) 755 - 7577", "PHONE"),
        ("0049 30 04397007", "PHONE"),
        ("777.357.3137", "PHONE"),
    ]


def test_a_british_number_does_not_start_inside_a_spaced_hyphen_number(redactor: Redactor) -> None:
    # "0608 020 7478" would be a valid British shape, but "0608" ends the number before it (after " - ").
    assert found(redactor, "call (917) 867 - 0608 020 7478 3044 food") == [
        ("(917) 867 - 0608", "PHONE"),
        ("020 7478 3044", "PHONE"),
    ]
    assert found(redactor, "Tel - 020 7946 0958") == [("020 7946 0958", "PHONE")]


# Shapes a second review found leaking: separators other than " ", "." and "-" (any Unicode space, a line
# break, the other dashes), and IBANs of countries outside the length table. Each is replaced whole.
EN_DASHED_IBAN = "\u2013".join(["DE89", "3704", "0044", "0532", "0130", "00"])
OTHER_SEPARATORS = [
    ("card 4111\xa01111\xa01111\xa01111", "4111\xa01111\xa01111\xa01111", "CARD"),  # no-break space
    ("card 4111\u202f1111\u202f1111\u202f1111", "4111\u202f1111\u202f1111\u202f1111", "CARD"),  # narrow no-break
    ("card 4111\u20091111\u20091111\u20091111 ok", "4111\u20091111\u20091111\u20091111", "CARD"),  # thin space
    ("card 4111\t1111\t1111\t1111", "4111\t1111\t1111\t1111", "CARD"),
    ("card 4111 1111 1111\n1111", "4111 1111 1111\n1111", "CARD"),
    ("card 4111 - 1111 - 1111 - 1111", "4111 - 1111 - 1111 - 1111", "CARD"),
    ("card 4111\u20131111\u20131111\u20131111", "4111\u20131111\u20131111\u20131111", "CARD"),  # en dash
    ("amex 3782\u2014822463\u201410005.", "3782\u2014822463\u201410005", "CARD"),  # em dash
    ("call 415 \u2013 555 \u2013 0132", "415 \u2013 555 \u2013 0132", "PHONE"),
    ("call 415\u2011555\u20110132", "415\u2011555\u20110132", "PHONE"),  # non-breaking hyphen
    ("call 415\u2212555\u22120132 now", "415\u2212555\u22120132", "PHONE"),  # minus sign
    ("call 020\xa07946\xa00958 now", "020\xa07946\xa00958", "PHONE"),
    ("call +44\u202f20\u202f7946\u202f0958", "+44\u202f20\u202f7946\u202f0958", "PHONE"),
    ("ssn 123\u201345\u20136789", "123\u201345\u20136789", "SSN"),
    ("ssn 123\xa045\xa06789 thanks", "123\xa045\xa06789", "SSN"),
    # A dash and a space mixed between the groups.
    ("ssn 123-45 6789 thanks", "123-45 6789", "SSN"),
    ("my social is 123 45-6789", "123 45-6789", "SSN"),
    ("ssn 123 \u2013 45 6789.", "123 \u2013 45 6789", "SSN"),
    ("DE89\xa03704\xa00044\xa00532\xa00130\xa000", "DE89\xa03704\xa00044\xa00532\xa00130\xa000", "IBAN"),
    (f"iban {EN_DASHED_IBAN}.", EN_DASHED_IBAN, "IBAN"),
    # Countries outside the length table: any two letters, 15-34 characters and mod 97.
    ("TR330006100519786457841326", "TR330006100519786457841326", "IBAN"),
    ("TR33 0006 1005 1978 6457 8413 26", "TR33 0006 1005 1978 6457 8413 26", "IBAN"),
    ("iban UA21 3223 1300 0002 6007 2335 6600 1 please", "UA21 3223 1300 0002 6007 2335 6600 1", "IBAN"),
    ("iban RS35 2600 0560 1001 6113 79", "RS35 2600 0560 1001 6113 79", "IBAN"),
    ("iban BR1800360305000010009795493C1", "BR1800360305000010009795493C1", "IBAN"),
    ("iban SA03 8000 0000 6080 1016 7519 today", "SA03 8000 0000 6080 1016 7519", "IBAN"),
    ("iban AE070331234567890123456.", "AE070331234567890123456", "IBAN"),
]


@pytest.mark.parametrize(("text", "value", "entity"), OTHER_SEPARATORS)
def test_numbers_with_any_separator_are_replaced_whole(redactor: Redactor, text: str, value: str, entity: str) -> None:
    result = redactor.redact(text)
    assert result.text == text.replace(value, f"<{entity}>")
    assert result.counts == {entity: 1}
    assert not any(c.isdigit() for c in result.text)  # no digit run of the number is left


# Names with letters outside A-Z, hyphenated, or of three words: every part of them goes.
ACCENTED_NAMES = [
    ("My name is José García", "José García"),
    ("Hello, I'm Renée Dupont.", "Renée Dupont"),
    ("My name is Łukasz Nowak", "Łukasz Nowak"),
    ("My name is Søren Kierkegaard", "Søren Kierkegaard"),
    ("Hi, I am Émile Zola", "Émile Zola"),
    ("Regards, Björn", "Björn"),
    ("My name is Anna-Lena Müller", "Anna-Lena Müller"),
    ("My name is Mary Ann Smith", "Mary Ann Smith"),
    ("Thanks,\nÅsa Öberg", "Åsa Öberg"),
    ("please speak with Mrs Żaneta Dvořáková", "Żaneta Dvořáková"),
    ("my name is Jose\u0301 Garci\u0301a, hi", "Jose\u0301 Garci\u0301a"),  # typed decomposed: e + U+0301
    ("Hello, I\u2019m Zoë O\u2019Connor-Ngô.", "Zoë O\u2019Connor-Ngô"),
]


@pytest.mark.parametrize(("text", "name"), ACCENTED_NAMES)
def test_names_with_any_latin_letters_are_replaced_whole(redactor: Redactor, text: str, name: str) -> None:
    result = redactor.redact(text)
    assert result.text == text.replace(name, "<PERSON>")
    for part in re.split(r"[\s-]+", name):
        assert part not in result.text


# Look-alikes near the new separators and names: prices, dates, ranges and quantities stay.
OTHER_SEPARATOR_NEAR_MISSES = [
    "it cost 1\xa0250,00 € on 15.03.2024, then 2\u202f499.00 €",
    "open 9\u201317, pages 12\u201315, 2019\u20132024, 10 \u2013 12 items",
    "order 12 items \u2013 3 boxes \u2013 2 bags, a 2 \u00d7 4 pack",
    "on 2024\u201303\u201315, 15\u201303\u20132024 and 15.03.2024 at 10:45\u201311:30",
    "the TR33 route, flight UA 1234, gate B22 \u2013 seat 14C",
    "scores 41 \u2013 55 \u2013 0132, 12\xa034\xa05678, 1 \u2013 2 \u2013 3",
    "card 4111\xa01111\xa01111\xa01112 fails Luhn, so does 4111\u20131111\u20131111\u20131112",
    "IBAN TR340006100519786457841326 fails mod 97, XX12 34 is short, TR33 0006 alone too",
    "Hi, I am Very Annoyed. Thanks, Team! Café Müller was closed. Regards, all.",
]


@pytest.mark.parametrize("text", OTHER_SEPARATOR_NEAR_MISSES)
def test_look_alikes_near_the_other_separators_stay(redactor: Redactor, text: str) -> None:
    assert found(redactor, text) == []


def test_a_13_digit_card_is_redacted() -> None:
    assert Redactor().redact("my card 4222222222222 was charged twice").text == "my card <CARD> was charged twice"


def test_an_ssn_shaped_number_in_the_9xx_area_is_not_an_ssn() -> None:
    assert "SSN" not in Redactor().redact("ticket 912-34-5678 please").counts
    assert "SSN" not in Redactor().redact("ticket 912-34 5678 please").counts  # mixed separators: the same rules


@pytest.mark.parametrize("text", ["paid 123.45 6789 points", "ref 123-45\n6789 on the next line"])
def test_a_dot_or_a_line_break_is_not_mixed_with_other_ssn_separators(text: str) -> None:
    assert "SSN" not in Redactor().redact(text).counts
