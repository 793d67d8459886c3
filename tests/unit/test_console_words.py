"""The console's words: both languages say everything, every message a page asks for exists,
and the language a request gets is the one its operator asked for."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from services.api import schemas
from services.api.console.i18n import LANGUAGES, catalogue, choose_language
from services.api.console.pages import _PAGES, NAVIGATION
from shared.contract.actions import NotificationStatus
from shared.domain.lifecycle import STAGES
from shared.domain.segments import FIELDS, OPS_BY_KIND

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "api" / "console"
SOURCES = [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("static/*.js"), *CONSOLE.glob("static/pages/*.js")]
# t("key") and t('key') with a whole key; t("prefix." + value) is checked per value below.
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']\s*[,)]""")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
WAVE_FIELDS = schemas.CampaignWave.model_fields


def _literal(annotation: Any) -> set[str]:
    return {value for value in get_args(annotation) if isinstance(value, str)}


def test_both_languages_have_the_same_messages_and_none_is_empty() -> None:
    english, chinese = catalogue("en"), catalogue("zh")
    assert set(english) == set(chinese)
    assert all(text.strip() for text in [*english.values(), *chinese.values()])


@pytest.mark.parametrize("key", sorted(catalogue("en")))
def test_a_message_has_the_same_placeholders_in_both_languages(key: str) -> None:
    assert set(PLACEHOLDER.findall(catalogue("en")[key])) == set(PLACEHOLDER.findall(catalogue("zh")[key]))


def test_the_chinese_catalogue_is_chinese() -> None:
    chinese = catalogue("zh")
    untranslated = [key for key, text in chinese.items() if text == catalogue("en")[key] and key.isascii()]
    # Language names, code-like labels and formats read the same in both.
    assert set(untranslated) <= {
        "language.zh",
        "language.en",
        "error.prefix",
        "member.rfm",
        "segment.value_hint_boolean",
    }


def test_every_message_a_page_names_exists() -> None:
    used = {key for source in SOURCES for key in LITERAL_KEY.findall(source.read_text(encoding="utf-8"))}
    assert len(used) > 150
    assert used - set(catalogue("en")) == set()


@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("page.", set(_PAGES)),
        ("language.", set(LANGUAGES)),
        ("stage.", set(STAGES)),
        (
            "status.",
            _literal(schemas.CampaignStatus) | _literal(schemas.CampaignWave.model_fields["status"].annotation),
        ),
        ("wave.", _literal(WAVE_FIELDS["audience"].annotation)),
        ("outcome.", _literal(NotificationStatus)),
        ("ledger.", _literal(schemas.LedgerLine.model_fields["kind"].annotation)),
        ("coupon.", _literal(schemas.CouponItem.model_fields["status"].annotation)),
        ("field.", set(FIELDS)),
        ("segment.value_hint_", set(OPS_BY_KIND) | {"in", "between"}),
        ("timeline.", {"action", "notification", "decision", "points", "coupon"}),
        ("session.", {"full", "read"}),
    ],
)
def test_every_value_shown_through_a_prefix_has_its_words(prefix: str, values: set[str]) -> None:
    assert values
    assert {prefix + value for value in values} - set(catalogue("en")) == set()


def test_the_navigation_names_real_pages() -> None:
    assert set(NAVIGATION) <= set(_PAGES)


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "chosen"),
    [
        (None, None, None, "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, None, "fr-FR, zh-TW;q=0.5", "zh"),
        (None, None, "en;q=0.2, zh;q=0.7", "zh"),
        (None, None, "zh;q=0, en;q=0.1", "en"),
        (None, None, "zh;q=oops, en;q=0.1", "en"),
        (None, None, "de, fr", "en"),
        (None, "zh", "en-US", "zh"),
        ("en", "zh", "zh-CN", "en"),
        ("xx", "zh", "en", "zh"),
        ("zh", None, None, "zh"),
    ],
)
def test_the_language_is_the_link_then_the_cookie_then_the_browser(
    query: str | None, cookie: str | None, accept: str | None, chosen: str
) -> None:
    assert choose_language(query, cookie, accept) == chosen


def test_the_chart_library_is_the_pinned_release() -> None:
    """Chart.js 4.6.1's dist/chart.umd.min.js as npm publishes it (deploy/scripts/vendor-chartjs.sh)."""
    vendored = (CONSOLE / "static" / "vendor" / "chart.umd.min.js").read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"
    assert vendored.startswith(b"/*!\n * Chart.js v4.6.1\n")
