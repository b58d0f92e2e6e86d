"""Vietnamese text: stored NFC, searched folded."""

from __future__ import annotations

import unicodedata

from ioc.text import fold, nfc


def test_nfc_makes_decomposed_and_precomposed_names_equal() -> None:
    decomposed = unicodedata.normalize("NFD", "Trà Kót")
    assert decomposed != "Trà Kót"
    assert nfc(decomposed) == "Trà Kót"
    assert nfc("Trà Kót") == "Trà Kót"


def test_fold_strips_diacritics_and_lowers_case() -> None:
    assert fold("Thị trấn Trà My") == "thi tran tra my"
    assert fold("TRÀ GIÁC") == "tra giac"
    assert fold("Hồ sơ quá hạn") == "ho so qua han"


def test_fold_maps_d_with_stroke_which_nfd_does_not_decompose() -> None:
    assert fold("Đốc") == "doc"
    assert fold("Trà Đông, đường") == "tra dong, duong"


def test_fold_is_the_same_for_nfd_input_and_collapses_spaces() -> None:
    assert fold(unicodedata.normalize("NFD", "  Trà   Dương ")) == "tra duong"
