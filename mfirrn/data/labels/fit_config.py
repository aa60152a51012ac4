"""The settings of the landmark fit (:mod:`mfirrn.data.labels.fitting`) and its named point sets.

Kept apart from the fit itself so that the command line can show the defaults without loading PyTorch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mfirrn.evaluation.metrics import AFLW21_FROM_68

__all__ = ["FitConfig", "WITHOUT_EARS", "SAME_DEFINITION", "POINT_SETS", "unconstrained"]


@dataclass(frozen=True)
class FitConfig:
    """Settings of the landmark fit.

    ``prior_weight`` λ of the anchor to the teacher (normalised-param units); ``max_iter``
    L-BFGS iterations per batch; ``fit_pose/shape/exp`` choose the free parameter blocks; ``max_residual`` is
    the quality gate on the per-face RMS residual (fraction of the annotation size).
    ``contour_weight`` μ anchors the 2D positions of the 68-point landmarks ``contour`` (1-based; default:
    the jaw line but for points 3, 9 and 15, which AFLW's ear and chin points constrain) to the teacher's,
    in the data term's units (mean squared distance / annotation size²): "trust the teacher where the
    annotation says nothing". 0 (default) leaves them to the fit.
    ``ignore_points``: annotated points (1-based indices of the annotation scheme) left out of the data
    term, the residual and the visible count, e.g. AFLW's ear lobes (13, 17), which no 68-point landmark
    marks (:data:`WITHOUT_EARS` is that setting, with jaw points 3 and 15 joining the anchored contour;
    :data:`SAME_DEFINITION` keeps only the points defined like their 68-point landmarks). :data:`POINT_SETS`
    names these settings.
    """

    prior_weight: float = 0.05
    contour_weight: float = 0.0
    contour: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17)
    max_iter: int = 200
    fit_pose: bool = True
    fit_shape: bool = True
    fit_exp: bool = True
    ignore_points: tuple[int, ...] = ()
    max_residual: float = 0.05
    min_visible: int = 6
    batch_size: int = 1024

    def to_dict(self) -> dict:
        return asdict(self)


# AFLW's ear lobes (21-point indices 13 and 17) out of the fit; the jaw then has only the chin (68-point 9)
# constrained, and every other jaw point joins the contour anchored to the teacher
WITHOUT_EARS = {"ignore_points": (13, 17), "contour": tuple(i for i in range(1, 18) if i != 9)}


def unconstrained(ignore_points: tuple[int, ...],
                  groups: tuple[tuple[int, ...], ...] = AFLW21_FROM_68) -> tuple[int, ...]:
    """1-based 68-point landmarks that no annotated point outside ``ignore_points`` averages over."""
    used = {i for k, g in enumerate(groups, start=1) if k not in ignore_points for i in g}
    return tuple(i for i in range(1, 69) if i not in used)


# Only AFLW points whose definition is the 68-point landmark they are mapped to: the eye corners and centres,
# the nose tip and the mouth's corners and centre. Left out: the brows (AFLW marks the brow's middle line,
# the 68-point scheme its upper edge), the ear lobes (no 68-point landmark), the nose wings (AFLW: the
# outermost point of the ala; 68-point 32/36: the nostril's lower end) and the chin centre (68-point 9 is
# the lowest point of the jaw line). Every 68-point landmark the remaining points do not constrain is
# anchored to the teacher.
_DIFFERENT_DEFINITION = (1, 2, 3, 4, 5, 6, 13, 14, 16, 17, 21)
SAME_DEFINITION = {"ignore_points": _DIFFERENT_DEFINITION, "contour": unconstrained(_DIFFERENT_DEFINITION)}

POINT_SETS = {"all": {}, "without-ears": WITHOUT_EARS, "same-definition": SAME_DEFINITION}
