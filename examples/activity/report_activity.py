"""Report activity to unamentis-agent from the Management Console (or any
Python service), with the standard library only.

    from report_activity import report_activity
    report_activity("management")                      # one request
    report_activity("vibevoice", kind="inference")     # one synthesis

Monitoring must never break the service: errors are returned, not raised,
and the timeout is short.
"""

import json
import os
import urllib.error
import urllib.request

AGENT = os.environ.get("UNAMENTIS_AGENT_URL", "http://127.0.0.1:8767")
TOKEN = os.environ.get("UNAMENTIS_AGENT_SERVER_TOKEN")


def report_activity(service, kind="request", count=1, timeout=0.5):
    """POST /v1/activity; returns None on success, else the error text."""
    body = json.dumps({"service": service, "kind": kind, "count": count}).encode()
    req = urllib.request.Request(
        AGENT + "/v1/activity",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if TOKEN:
        req.add_header("Authorization", "Bearer " + TOKEN)
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return None
    except urllib.error.HTTPError as e:
        # 400 says why (unknown service, bad kind), 401 is a wrong token.
        return "%d %s" % (e.code, e.read().decode(errors="replace"))
    except (urllib.error.URLError, OSError) as e:
        return str(e)


if __name__ == "__main__":
    err = report_activity("management")
    print(err or "reported")
