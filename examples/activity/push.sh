#!/bin/sh
# Report one inference to the agent's push probe (POST /v1/activity).
# kind: request | inference | connection; kind defaults to request, count to 1.
# Add  -H "Authorization: Bearer $UNAMENTIS_AGENT_SERVER_TOKEN"  when server.token is set.
curl -fsS -X POST http://127.0.0.1:8767/v1/activity \
  -H 'Content-Type: application/json' \
  -d '{"service": "piper", "kind": "inference", "count": 1}'
