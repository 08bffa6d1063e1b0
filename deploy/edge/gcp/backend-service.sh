#!/usr/bin/env bash
# Google Cloud external Application Load Balancer in front of consentgate
# (VMs or GKE standalone NEGs): the load balancer adds the visitor's
# country as X-Forwarded-CountryRegion on every request to the backend.
# Any value a visitor sends in that header is replaced, not appended.
#
# consentgate config for this setup:
#   geo:
#     headers: ["X-Forwarded-CountryRegion"]
#   # Google Front Ends, plus the load balancer's own forwarding-rule
#   # address(es): the LB appends "<client>, <lb address>" to X-Forwarded-For.
#   trusted_proxies: ["130.211.0.0/22", "35.191.0.0/16", "LB_IP/32"]
#
# The load balancer gives the country only ({client_region}, such as DE);
# its subdivision variable ({client_region_subdivision}, such as USCA) has
# no separator, so per-state rules (consent.regions: US-CA) fall back to
# the country's rule behind Google Cloud's load balancer.
set -euo pipefail
BACKEND=${BACKEND:-consentgate-backend}

gcloud compute backend-services update "$BACKEND" --global \
	--custom-request-header='X-Forwarded-CountryRegion:{client_region}'

# Health checks: GET /readyz on the serving port (8080).
gcloud compute health-checks create http consentgate-readyz \
	--port=8080 --request-path=/readyz --check-interval=5s --timeout=2s \
	--healthy-threshold=1 --unhealthy-threshold=2 || true
gcloud compute backend-services update "$BACKEND" --global --health-checks=consentgate-readyz
