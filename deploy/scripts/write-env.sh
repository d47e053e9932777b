#!/usr/bin/env bash
# Write a compose env file from environment variables, one NAME='value' line per non-empty one.
#
#   write-env.sh OUTPUT NAME [NAME...]
#
# Values are single-quoted so Compose takes them literally: a bcrypt hash in
# GRAFANA_BASIC_AUTH_USER keeps its `$`s. A value containing a single quote or a newline cannot be
# written that way and is refused (the script fails, naming the variable, never printing values).
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 OUTPUT NAME [NAME...]" >&2
  exit 2
fi
output=$1
shift

tmp=$(mktemp "${output}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 600 "$tmp"
{
  echo "# Written by deploy/scripts/write-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Do not commit."
  for name in "$@"; do
    if ! [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]]; then
      echo "write-env: invalid variable name: $name" >&2
      exit 1
    fi
    value=${!name-}
    [ -n "$value" ] || continue
    if [[ "$value" == *"'"* || "$value" == *$'\n'* ]]; then
      echo "write-env: $name contains a single quote or a newline; choose another value" >&2
      exit 1
    fi
    printf "%s='%s'\n" "$name" "$value"
  done
} >"$tmp"
mv "$tmp" "$output"
trap - EXIT
