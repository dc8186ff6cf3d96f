#!/usr/bin/env bash
# The site's wildcard certificate by ACME DNS-01 (a wildcard cannot use HTTP-01), then an
# apply so that nginx loads it. Pick the DNS plugin of your provider; run from cron/systemd
# timers, or let certbot's own timer call the deploy hook.
#   ./renew-certificate.sh apps.example.org local
set -euo pipefail
domain=${1:?domain, e.g. apps.example.org}
site=${2:?site slug, e.g. local}
apply="cd /opt/cluster-portal && set -a && . /etc/cluster-portal/portal.env && . /etc/cluster-portal/gateway.env && set +a && .venv/bin/python manage.py gateway apply --site $site --force"

if command -v certbot >/dev/null; then
  # e.g. apt-get install certbot python3-certbot-dns-rfc2136 (or -cloudflare, -route53, ...)
  certbot certonly --non-interactive --agree-tos -m "hostmaster@$domain" \
    --dns-rfc2136 --dns-rfc2136-credentials /etc/cluster-portal/rfc2136.ini \
    -d "$domain" -d "*.$domain" --deploy-hook "$apply"
else
  # acme.sh: export the provider's API variables first (e.g. CF_Token for dns_cf).
  ~/.acme.sh/acme.sh --issue --dns dns_cf -d "$domain" -d "*.$domain"
  ~/.acme.sh/acme.sh --install-cert -d "$domain" \
    --fullchain-file "/etc/letsencrypt/live/$domain/fullchain.pem" \
    --key-file "/etc/letsencrypt/live/$domain/privkey.pem" --reloadcmd "$apply"
fi
