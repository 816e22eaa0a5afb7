"""The package's name, licence and people (authors, maintainers, uploader) and the other Model Zoo fields the
export options give (version, git_repo, training_data), each checked by bioimageio.spec's own types so that a
bad option is a one-line error before the slow steps."""
from __future__ import annotations

import getpass
import string
from typing import Any, Sequence

from microsam_fiji.core.errors import UserError

PERSON_FIELDS = ("affiliation", "email", "orcid", "github_user")
NAME_CHARACTERS = set(string.ascii_letters + string.digits + "_+- ()")  # what the Model Zoo allows in names


def check_name(name: str) -> str:
    """``name`` when the Model Zoo allows it as a package name, else a UserError."""
    if not name or not name.strip() or set(name) - NAME_CHARACTERS or not 5 <= len(name) <= 128:
        raise UserError(f"package name {name!r} is not allowed: use 5 to 128 letters, digits, spaces and _+-()")
    return name


DESCRIPTION_MAX = 1024  # bioimageio.spec 0.5's limit for a model's description (it warns from 512)


def check_description(description: str | None) -> str | None:
    """``description`` when bioimageio.spec accepts it, else a UserError naming the limit."""
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise UserError(f"--description is {len(description)} characters: the Model Zoo allows at most "
                        f"{DESCRIPTION_MAX} (put longer text into --documentation)")
    return description


def training_data_source(text: str | None) -> str | None:
    """The URL of ``--training-data`` given as an https:// URL or a DOI (``10.x/y`` or ``doi:10.x/y``); None for
    a Model Zoo dataset id (see :func:`upload_fields`) or nothing."""
    if not text:
        return None
    doi = text.removeprefix("doi:").removeprefix("https://doi.org/")
    if doi.startswith("10.") and "/" in doi:
        return f"https://doi.org/{doi}"
    if text.startswith(("http://", "https://")):
        from bioimageio.spec.model import v0_5 as spec
        from pydantic import TypeAdapter, ValidationError

        try:
            return str(TypeAdapter(spec.HttpUrl).validate_python(text))
        except ValidationError:
            raise UserError(f"--training-data {text!r} is not a valid URL: give a Model Zoo dataset id, a DOI "
                            "or an https:// URL") from None
    return None


def check_license(license: str) -> str:
    """``license`` when it is an SPDX identifier bioimageio.spec knows, else a UserError."""
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(spec.LicenseId).validate_python(license)
    except ValidationError:
        raise UserError(f"unknown license '{license}': use an SPDX identifier such as CC-BY-4.0 or MIT") from None
    return license


def parse_person(text: str, kind: str) -> dict[str, str]:
    """The fields of a bioimageio Author / Maintainer written as one option value.

    Args:
        text: ``"Jane Doe; affiliation=Uni X; github_user=jdoe; orcid=0000-0002-1825-0097; email=j@x.org"``:
            the name first, the rest as key=value (``github`` for ``github_user``, ``-`` for ``_``).
        kind: ``author`` or ``maintainer``, for the error message.

    Returns:
        Field name -> value.

    Raises:
        UserError: a part is not ``key=value`` with a known key and a value.
    """
    parts = [p.strip() for p in text.split(";") if p.strip()]
    fields: dict[str, str] = {}
    for i, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if not sep and i == 0:
            fields["name"] = part
            continue
        key = key.strip().replace("-", "_")
        if key == "github":
            key = "github_user"
        if not sep or key not in ("name", *PERSON_FIELDS) or not value.strip():
            raise UserError(f"--{kind} {text!r}: use 'NAME; github_user=USER; affiliation=TEXT; orcid=ID; "
                            "email=ADDRESS' (fields after the name optional)")
        fields[key] = value.strip()
    return fields


def people(texts: Sequence[str] | None, kind: str) -> list:
    """bioimageio Authors (``kind`` ``author``) or Maintainers from option values (see :func:`parse_person`)."""
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import ValidationError

    cls = spec.Author if kind == "author" else spec.Maintainer
    found = []
    for text in texts or []:
        fields = parse_person(text, kind)
        try:
            found.append(cls(**fields))  # type: ignore[arg-type]  # pydantic validates the strings
        except ValidationError as err:
            problem = err.errors()[0]
            raise UserError(f"--{kind} {text!r}: {'.'.join(map(str, problem['loc']))}: {problem['msg']}") \
                from None
    return found


def authors(texts: Sequence[str] | None) -> list:
    """The package's authors; without any, the user's login name (a package needs one author; validate then
    warns that a user name is no author)."""
    from bioimageio.spec.model import v0_5 as spec

    found = people([a for a in (texts or []) if a and a.strip()], "author")
    return found or [spec.Author(name=getpass.getuser())]


def uploader(text: str | None):
    """The bioimageio Uploader of ``"EMAIL"`` or ``"EMAIL; NAME"``, or None without one."""
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import ValidationError

    if not text:
        return None
    email, _, name = text.partition(";")
    try:
        return spec.Uploader(email=email.strip(), name=name.strip() or None)
    except ValidationError:
        raise UserError(f"--uploader {text!r}: use 'EMAIL' or 'EMAIL; NAME'") from None


def upload_fields(maintainers, uploader_text, version, git_repo, training_data) -> dict[str, Any]:
    """Optional Model Zoo fields from the export options, checked by bioimageio.spec's own types.

    Args:
        maintainers: Option values as for authors (see :func:`parse_person`), or None.
        uploader_text: ``"EMAIL; NAME"`` or None.
        version: The model's version (e.g. ``1.0.0``) or None.
        git_repo: An https:// URL of the training code, or None.
        training_data: A Model Zoo dataset id, optionally ``ID/VERSION`` (a URL or DOI is left to
            :func:`training_data_source`), or None.

    Returns:
        Keyword arguments for ``ModelDescr``: only the fields that were given.

    Raises:
        UserError: a value is not what bioimageio.spec accepts for its field.
    """
    from bioimageio.spec.dataset.v0_3 import LinkedDataset
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import TypeAdapter, ValidationError

    fields: dict[str, Any] = {}
    if maintainers:
        fields["maintainers"] = people(maintainers, "maintainer")
    if uploader_text:
        fields["uploader"] = uploader(uploader_text)
    for key, value, kind, hint in (("version", version, spec.Version, "e.g. 1.0.0"),
                                   ("git_repo", git_repo, spec.HttpUrl, "an https:// URL")):
        if value:
            try:
                fields[key] = TypeAdapter(kind).validate_python(str(value))
            except ValidationError:
                raise UserError(f"--{key.replace('_', '-')} {value!r} is not valid: {hint}") from None
    if training_data and training_data_source(training_data) is None:
        dataset_id, _, dataset_version = str(training_data).partition("/")
        try:
            fields["training_data"] = LinkedDataset(id=dataset_id, version=dataset_version or None)  # type: ignore[arg-type]
        except ValidationError:
            raise UserError(f"--training-data {training_data!r}: give a Model Zoo dataset id (e.g. "
                            "'amazing-dataset' or 'amazing-dataset/1'), a DOI or an https:// URL") from None
    return fields
