"""kube-apiserver's structured authentication (AuthenticationConfiguration, apiserver.config.k8s.io/v1)
for the TLS stand-in: the issuer, audiences and claim mappings of the first `jwt` entry, and its
`claimValidationRules`, each CEL expression evaluated with a real CEL implementation (cel-python)
over the token's claims bound as the map `claims`, as the API server does. A rule that evaluates to
false refuses the token with the rule's message; an error (or a non-boolean) refuses it too.

apiserver_standin.Authenticator is unchanged: this wraps it (signature, iss, aud, exp, names and
groups first, then the rules)."""
import base64
import json

import celpy
import yaml
from celpy import celtypes

from apiserver_standin import Authenticator


def compile_rule(expression):
    """A CEL program with one variable, `claims`, a map (kube-apiserver's claimValidationRules environment)."""
    env = celpy.Environment(annotations={"claims": celtypes.MapType})
    return env.program(env.compile(expression))


def evaluate(program, claims):
    """Evaluates a compiled rule over JSON claims. Returns True/False; raises ValueError on a CEL error
    or a result that is not a boolean (the API server refuses the token in both cases)."""
    try:
        result = program.evaluate({"claims": celpy.json_to_cel(claims)})
    except celpy.CELEvalError as e:
        raise ValueError(f"CEL evaluation error: {e}") from e
    if isinstance(result, celpy.CELEvalError):
        raise ValueError(f"CEL evaluation error: {result}")
    if not isinstance(result, celtypes.BoolType):
        raise ValueError(f"CEL expression returned {type(result).__name__}, not a bool")
    return bool(result)


def evaluate_expression(expression, claims):
    return evaluate(compile_rule(expression), claims)


class Rule:
    def __init__(self, spec):
        self.message = spec.get("message", "")
        if "expression" in spec:
            self.expression = spec["expression"]
            self.program = compile_rule(self.expression)
            self.claim = self.required = None
        else:  # the older form: claim + requiredValue
            self.expression = self.program = None
            self.claim, self.required = spec["claim"], spec.get("requiredValue", "")
            self.message = self.message or f"claim {self.claim} must be {self.required!r}"

    def check(self, claims):
        """Raises ValueError(message) when the claims do not satisfy the rule."""
        if self.program is not None:
            try:
                ok = evaluate(self.program, claims)
            except ValueError as e:
                raise ValueError(f"{self.message} ({e})") from e
        else:
            ok = claims.get(self.claim) == self.required
        if not ok:
            raise ValueError(self.message)


def unverified_claims(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class RuleAuthenticator(Authenticator):
    """The stand-in's Authenticator plus claimValidationRules."""

    def __init__(self, issuer, client_id, rules=(), **kwargs):
        super().__init__(issuer, client_id, **kwargs)
        self.rules = [r if isinstance(r, Rule) else Rule(r) for r in rules]
        self.rule_refusals = []  # messages of the rules that refused a token

    @classmethod
    def from_authentication_configuration(cls, text, issuer_ca=None):
        """From the AuthenticationConfiguration YAML (the first jwt authenticator)."""
        doc = yaml.safe_load(text)
        assert doc["kind"] == "AuthenticationConfiguration", doc.get("kind")
        jwt = doc["jwt"][0]
        mappings = jwt.get("claimMappings", {})
        username = mappings.get("username", {})
        groups = mappings.get("groups", {})
        return cls(jwt["issuer"]["url"], jwt["issuer"]["audiences"][0], rules=jwt.get("claimValidationRules") or [],
                   username_claim=username.get("claim", "sub"), username_prefix=username.get("prefix", ""),
                   groups_claim=groups.get("claim", "groups"), groups_prefix=groups.get("prefix", ""),
                   algorithms=("RS256", "ES256"), issuer_ca=issuer_ca)

    def authenticate(self, token):
        user, groups = super().authenticate(token)  # signature, iss, aud, exp first: the claims below are verified
        claims = unverified_claims(token)
        for rule in self.rules:
            try:
                rule.check(claims)
            except ValueError as e:
                self.rule_refusals.append(str(e))
                raise
        return user, groups
