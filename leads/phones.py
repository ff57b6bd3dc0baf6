"""Phone numbers are stored in E.164; this is the one place that reads what people type."""

import phonenumbers
from django.conf import settings


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: object, region: str | None = None) -> str:
    """'(415) 555-0123' -> '+14155550123', or InvalidPhone with a sentence saying why."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhone("a phone number is required")
    text = raw.strip()
    try:
        parsed = phonenumbers.parse(text, region or settings.DIALNEXA_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f'"{text}" is not a valid phone number') from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f'"{text}" is not a valid phone number')
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
