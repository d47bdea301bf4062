"""fits.loglog_fit against closed forms (exact power laws, hand-computed least squares)."""

import numpy as np
import pytest

from hfmaml_core import fits


def test_an_exact_power_law_gives_its_exponent_and_zero_se():
    x = np.geomspace(1.0, 1e3, 7)
    f = fits.loglog_fit(x, 3.0 * x**-0.5)
    assert f.slope == pytest.approx(-0.5, abs=1e-12)
    assert np.exp(f.intercept) == pytest.approx(3.0, rel=1e-12)
    assert f.se == pytest.approx(0.0, abs=1e-12)
    assert f.predict([10.0])[0] == pytest.approx(3.0 / np.sqrt(10.0), rel=1e-12)


def test_slope_and_se_match_the_textbook_formulas():
    rng = np.random.default_rng(0)
    x = np.geomspace(1.0, 100.0, 9)
    y = x**1.3 * np.exp(0.1 * rng.standard_normal(9))
    u, v = np.log(x), np.log(y)
    sxx = ((u - u.mean()) ** 2).sum()
    p = ((u - u.mean()) * (v - v.mean())).sum() / sxx
    r = v - (v.mean() + p * (u - u.mean()))
    f = fits.loglog_fit(x, y)
    assert f.slope == pytest.approx(p, rel=1e-12)
    assert f.se == pytest.approx(np.sqrt((r @ r) / 7 / sxx), rel=1e-10)


def test_two_points_have_no_se():
    f = fits.loglog_fit([1.0, 10.0], [1.0, 100.0])
    assert f.slope == pytest.approx(2.0) and np.isnan(f.se)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([1.0], [1.0], "x must hold at least 2"),
        ([1.0, 1.0], [1.0, 2.0], "distinct"),
        ([1.0, 2.0], [1.0, -2.0], "y must be positive"),
        ([0.0, 2.0], [1.0, 2.0], "x must be positive"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "y must have shape"),
    ],
)
def test_bad_input_names_the_parameter(x, y, match):
    with pytest.raises(ValueError, match=match):
        fits.loglog_fit(x, y)
