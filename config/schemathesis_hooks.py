"""schemathesis hooks for scripts/api-conformance.

The OpenAPI document states each field's type and range; three rules of the API relate
fields to each other or to stored state, which a JSON Schema cannot state:

- a box space's `low` and `high` have equal lengths and `low[i] <= high[i]`; a task's
  termination bounds have the observation space's dimension and `low[i] < high[i]`
  (`TaskSpec::validate`);
- an experience batch must fit the stored task's spaces: observation length, values within
  the box, a discrete action below `n` or a continuous one of the action dimension
  (`ExperienceBatch::validate`).

For *positive* cases (data that should be accepted) the hooks below bring a generated body
into line with these rules, so that schemathesis' `positive_data_acceptance` check tests
what it means to; negative cases are left as generated, and every check stays on. The
descriptions of `Space`, `Termination` and `POST /experience` in the document state the
same rules in words.

The stateful phase runs like a client: after a `POST /train` it polls the job until it
ends (as `plasma-client` does) before following the document's links to the compiler.

`PLASMA_CONFORMANCE_URL` is the server's base URL (set by scripts/api-conformance).
"""

import math
import os
import struct
import time

import requests
import schemathesis

BASE = os.environ.get("PLASMA_CONFORMANCE_URL", "").rstrip("/")
_specs = {}


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _value(bound):
    """A bound as the server reads it: an f32."""
    if bound == "inf":
        return math.inf
    if bound == "-inf":
        return -math.inf
    return struct.unpack("f", struct.pack("f", float(bound)))[0]


def _ordered_pair(low, high, dim=None):
    """Equal lengths (`dim` if given), each low <= its high."""
    n = min(len(low), len(high)) if dim is None else dim
    low = (list(low) + ["-inf"] * n)[:n]
    high = (list(high) + ["inf"] * n)[:n]
    for i in range(n):
        if _value(low[i]) > _value(high[i]):
            low[i], high[i] = high[i], low[i]
    return low, high


def _fix_space(space):
    if isinstance(space, dict) and space.get("type") == "box":
        space["low"], space["high"] = _ordered_pair(space["low"], space["high"])


def _fix_task(spec):
    _fix_space(spec.get("observation_space"))
    _fix_space(spec.get("action_space"))
    termination = spec.get("termination")
    obs = spec.get("observation_space")
    if isinstance(termination, dict) and isinstance(obs, dict):
        dim = 1 if obs.get("type") == "discrete" else len(obs["low"])
        low, high = _ordered_pair(termination["low"], termination["high"], dim)
        # A termination interval is open: low strictly below high.
        for i in range(dim):
            if _value(low[i]) == _value(high[i]):
                low[i], high[i] = "-inf", "inf"
        termination["low"], termination["high"] = low, high


def _stored_spec(name):
    """The task's spec as the server holds it (`GET /tasks/{name}`), None if unknown."""
    if name not in _specs:
        r = requests.get(f"{BASE}/tasks/{name}", timeout=10)
        _specs[name] = r.json()["spec"] if r.status_code == 200 else None
    return _specs[name]


def _within(x, low, high):
    if not math.isfinite(x):
        x = 0.0
    x = max(x, _value(low))
    return min(x, _value(high))


def _fit_observation(values, space):
    if space["type"] == "discrete":
        dim, low, high = 1, [0.0], [float(space["n"] - 1)]
    else:
        dim, low, high = len(space["low"]), space["low"], space["high"]
    values = (list(values) + [0.0] * dim)[:dim]
    return [_within(float(v), low[i], high[i]) for i, v in enumerate(values)]


def _fit_action(action, space):
    if space["type"] == "discrete":
        if isinstance(action, list):
            action = action[0] if action else 0
        return int(abs(action)) % space["n"]
    dim = len(space["low"])
    values = action if isinstance(action, list) else [action]
    values = (list(values) + [0.0] * dim)[:dim]
    return [float(v) if math.isfinite(float(v)) else 0.0 for v in values]


def _fix_experience(batch):
    spec = _stored_spec(batch["task_name"])
    if spec is None:
        return  # an unknown task: the server answers 404, which the check accepts
    obs, act = spec["observation_space"], spec["action_space"]
    for t in batch["transitions"]:
        t["obs"] = _fit_observation(t["obs"], obs)
        t["next_obs"] = _fit_observation(t["next_obs"], obs)
        t["action"] = _fit_action(t["action"], act)


@schemathesis.hook
def before_call(context, case, kwargs):
    # Here rather than in `map_case`: in the stateful phase the document's links fill in
    # fields (a task name) after a case is generated, and the rules depend on them.
    if not _positive(case) or not isinstance(case.body, dict):
        return
    op = (case.method.upper(), case.path)
    if op == ("POST", "/tasks"):
        _fix_task(case.body)
        _specs.pop(case.body.get("name"), None)
    elif op == ("POST", "/experience") and BASE:
        _fix_experience(case.body)


@schemathesis.hook
def after_call(context, case, response):
    if (case.method.upper(), case.path) != ("POST", "/train") or response.status_code != 202:
        return
    if case.meta is None or case.meta.phase.name.lower() != "stateful":
        return
    job = response.json()["training_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # `GET /train/{id}`, not `GET /jobs/{id}`: scripts/api-conformance counts answers of
        # the latter as evidence that the stateful phase followed the links there.
        status = requests.get(f"{BASE}/train/{job}", timeout=10).json().get("status")
        if status in ("complete", "failed", "cancelled", "interrupted"):
            return
        time.sleep(0.05)
