"""``microsam-fiji validate``: bioimageio.spec validation, bioimageio.core ``test_model`` for every weight format
(offline) and the micro-sam parts (metadata, hash-checked attachment), summed up on one screen."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError


@dataclass
class Check:
    name: str
    passed: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ValidationResult:
    path: Path
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def format(self, max_lines: int = 3) -> str:
        lines = [f"{self.path.name}: {'PASSED' if self.passed else 'FAILED'}"]
        for check in self.checks:
            lines.append(f"  [{'ok' if check.passed else 'FAILED'}] {check.name}")
            lines += [f"      error: {e}" for e in check.errors[:max_lines]]
            if len(check.errors) > max_lines:
                lines.append(f"      ... {len(check.errors) - max_lines} more errors")
            lines += [f"      warning: {w}" for w in check.warnings[:max_lines]]
            if len(check.warnings) > max_lines:
                lines.append(f"      ... {len(check.warnings) - max_lines} more warnings")
        return "\n".join(lines)


def _short(text: str, width: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _micro_sam_check(path: Path) -> Check:
    from .load import package_params, read_package

    try:
        contents = read_package(path)
        package_params(contents.config, path.name)
    except UserError as err:
        return Check("micro-sam metadata and hash-checked weights/attachment", False, [str(err)])
    cfg = contents.config
    return Check(f"micro-sam metadata ({cfg['model_type']}, default {str(cfg.get('default_mode')).upper()}) "
                 "and hash-checked weights/attachment", True)


def validate_package(path: str | os.PathLike, weight_format: str | None = None) -> ValidationResult:
    """Run every check on the package at ``path``; ``weight_format`` restricts ``test_model`` to one format."""
    # offline: check the files inside the package, do not ping the URLs it cites (set before bioimageio loads
    # its settings)
    os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
    from bioimageio.core import test_model
    from bioimageio.spec.summary import WARNING

    from .load import located

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"package '{path}' not found: check the path")
    checks = [_micro_sam_check(path)]
    if not checks[0].passed and "not a valid zip" in checks[0].errors[0]:
        return ValidationResult(path, checks)
    summary = test_model(path, weight_format=weight_format, devices=["cpu"])
    for detail in summary.details:
        errors = [_short(located(e)) for e in detail.errors]
        warnings = [_short(located(w)) for w in detail.warnings
                    if w.severity >= WARNING]  # leave out bioimageio's info-level notes
        checks.append(Check(_short(detail.name, 100), detail.status != "failed", errors, warnings))
    if summary.status == "failed" and all(c.passed for c in checks):
        checks.append(Check("bioimageio.core test_model", False, ["failed (see bioimageio.core's summary)"]))
    return ValidationResult(path, checks)
