#!/usr/bin/env bash
# Runs on the production server (the deploy workflow pipes it over SSH), in the folder that holds
# docker-compose.prod.yml and .env.prod:
#
#   remote-deploy.sh NEW_TAG
#
# Pulls the images tagged NEW_TAG, runs the one-off migrate job, restarts everything, and smoke
# checks /readyz (inside web, then through Traefik). On failure it puts the previous tag back and
# exits non-zero. Migrations are not rolled back: keep them backward compatible (add, then use,
# then remove in a later release), so the previous images still run on the new schema.
set -euo pipefail

new_tag=${1:?usage: remote-deploy.sh NEW_TAG}
state_file=.deployed-tag
previous_tag=$(cat "$state_file" 2>/dev/null || true)
smoke_attempts=${SMOKE_ATTEMPTS:-30}
smoke_delay=${SMOKE_DELAY_SECONDS:-5}

compose() {
  docker compose --env-file .env.prod -f docker-compose.prod.yml "$@"
}

domain=$(sed -n "s/^DOMAIN_NAME='\{0,1\}\([^']*\)'\{0,1\}$/\1/p" .env.prod | tail -n 1)
if [ -z "$domain" ]; then
  echo "deploy: DOMAIN_NAME missing from .env.prod" >&2
  exit 1
fi

smoke_check() {
  local attempt
  for attempt in $(seq 1 "$smoke_attempts"); do
    if compose exec -T web python /app/deploy/healthcheck.py http http://127.0.0.1:8000/readyz &&
      curl -fsS -k -o /dev/null --max-time 10 --resolve "${domain}:443:127.0.0.1" "https://${domain}/readyz"; then
      echo "deploy: /readyz answered on attempt ${attempt}"
      return 0
    fi
    sleep "$smoke_delay"
  done
  return 1
}

release() {
  local tag=$1
  export EVA_IMAGE_TAG=$tag
  compose pull --quiet
  compose run --rm migrate
  compose up -d --remove-orphans
}

echo "deploy: ${previous_tag:-<none>} -> ${new_tag}"
if release "$new_tag" && smoke_check; then
  echo "$new_tag" >"$state_file"
  docker image prune -f >/dev/null || true
  echo "deploy: ${new_tag} is live"
  exit 0
fi

echo "deploy: ${new_tag} failed its smoke check" >&2
compose logs --tail 50 web >&2 || true
if [ -n "$previous_tag" ]; then
  echo "deploy: rolling back to ${previous_tag}" >&2
  export EVA_IMAGE_TAG=$previous_tag
  compose up -d --remove-orphans
  if smoke_check; then
    echo "deploy: rolled back to ${previous_tag}" >&2
  else
    echo "deploy: rollback to ${previous_tag} is not healthy either; look at it now" >&2
  fi
else
  echo "deploy: no previous tag recorded, nothing to roll back to" >&2
fi
exit 1
