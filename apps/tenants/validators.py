from __future__ import annotations

import re

from django.core.exceptions import ValidationError

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Slugs that would collide with infrastructure host names or the public schema.
RESERVED_SLUGS = frozenset(
    {"public", "www", "api", "admin", "static", "media", "mail", "traefik", "grafana", "pg"}
)


def validate_slug(slug: str) -> None:
    if not SLUG_RE.match(slug):
        raise ValidationError(
            f"Invalid slug {slug!r}: use 3-40 lowercase letters, digits or hyphens, "
            "starting with a letter and not ending with a hyphen."
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg-"):
        raise ValidationError(f"The slug {slug!r} is reserved; choose another one.")


def validate_domain(domain: str) -> None:
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL_RE.match(x) for x in labels):
        raise ValidationError(
            f"Invalid domain {domain!r}: expected a lowercase host name such as "
            "acme.eva.example.com (letters, digits, hyphens and dots; no scheme, port or path)."
        )


def schema_name_for(slug: str) -> str:
    # PostgreSQL identifiers cannot contain hyphens unquoted; slugs contain no underscores, so
    # the mapping is one-to-one.
    return slug.replace("-", "_")
