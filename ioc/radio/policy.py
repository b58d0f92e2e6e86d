"""The radio service's policy: timeouts and retries from the settings (IOC_RADIO_*), confirmation
and CAP behaviour from the district file's ``radio:`` section, and the warning categories that may
drive loudspeakers from ``config/warnings.yaml`` (none when the file is missing or unreadable)."""

from __future__ import annotations

import logging

from ioc.radio.broadcasts import RadioPolicy
from ioc.radio.cap import CapPolicy
from ioc.settings import Settings

log = logging.getLogger(__name__)


def _district_radio(settings: Settings):  # noqa: ANN202 - ioc.district.models.RadioPolicy
    from ioc.district.loader import load_district
    from ioc.district.models import RadioPolicy as DistrictRadio

    try:
        return load_district(settings.district_config).radio
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported by `ioc config check`
        log.warning("radio: district file unreadable (%s); default radio policy", exc)
        return DistrictRadio()


def radio_categories(settings: Settings) -> frozenset[str]:
    from ioc.warnings.config import load_warnings_config

    try:
        return load_warnings_config(settings.warnings_config).radio_categories()
    except Exception as exc:  # noqa: BLE001 - reported by `ioc config check`; no category plays meanwhile
        log.warning("radio: warnings file unreadable (%s); no warning category may play", exc)
        return frozenset()


def policies(settings: Settings) -> tuple[RadioPolicy, CapPolicy]:
    district = _district_radio(settings)
    radio = RadioPolicy(
        ack_timeout_s=settings.radio_ack_timeout_s,
        max_attempts=settings.radio_max_attempts,
        playback_grace_s=settings.radio_playback_grace_s,
        second_confirmation=district.second_confirmation,
    )
    cap = CapPolicy(
        mode=district.cap,
        repeat=district.cap_repeat,
        media_dir=settings.var_dir / "media",
        max_audio_bytes=settings.radio_max_audio_bytes,
        max_audio_s=settings.radio_max_audio_s,
        categories=radio_categories(settings),
    )
    return radio, cap
