# Who may call which model, and with what. Evaluated for every call; see
# docs/policy.md for the input document and the decision's shape.
package llm.authz

import rego.v1

default allow := false

# Administrators may do everything.
allow if input.user.role == "admin"

# Users and services may call the models of their tier, with the features of their tier.
allow if {
	input.action in {"chat", "models.list"}
	input.user.role in {"user", "service"}
	model_allowed
	every feature in input.request.features {
		feature in features
	}
}

# Anyone signed in may check a text with the DLP scan API or an answer with the grounding
# API, and see their own limits.
allow if input.action in {"dlp.scan", "guardrails.check", "limits.read"}

# Anyone signed in may list the confirmations, and see and decide those that are theirs
# to decide: their own, or those whose rule names their role as an approver. The gateway
# puts the confirmation an action is about in input.confirmation, with the caller's
# relation to it (requester, approver or other), and never shows another tenant's. To let
# others decide (a security team, say, for production), allow them here by their role
# and input.confirmation's environment, risk or action.
confirmation_actions := {"confirmations.read", "confirmation.approve", "confirmation.cancel"}

allow if {
	input.action in confirmation_actions
	not input.confirmation
}

allow if {
	input.action in confirmation_actions
	input.confirmation.relation in {"requester", "approver"}
}

# Everyone may read their own usage.
allow if {
	input.action == "usage.read"
	input.request.scope == "own"
}

# Auditors read audit and usage data and compliance reports (of their own tenant only:
# the gateway confines every read to the caller's tenant).
allow if {
	input.action in {"audit.read", "usage.read", "reports.read"}
	input.user.role == "auditor"
}

# The admin API's keys: administrators only (the rule above; named here so that it
# stays so if that rule is narrowed). The gateway confines each call to the caller's
# tenant whatever this allows: another tenant's key is not found.
admin_key_actions := {"admin.keys.create", "admin.keys.list", "admin.keys.read", "admin.keys.revoke", "admin.keys.rotate"}

allow if {
	input.action in admin_key_actions
	input.user.role == "admin"
}

# The admin API's directory (the tenant's own record, its teams and users): administrators
# only, as keys. The gateway confines each call to the caller's tenant whatever this
# allows: another tenant's team or user is not found.
admin_directory_actions := {
	"admin.tenants.read", "admin.tenants.update",
	"admin.teams.create", "admin.teams.list", "admin.teams.read", "admin.teams.update", "admin.teams.delete",
	"admin.users.create", "admin.users.list", "admin.users.read", "admin.users.update", "admin.users.delete",
}

allow if {
	input.action in admin_directory_actions
	input.user.role == "admin"
}

tier := data.access.tiers[input.user.tier]

model_allowed if "*" in tier.models

model_allowed if input.request.model in tier.models

features := {f | some f in tier.features}

# The object form of the decision (OPA_POLICY_PATH=/v1/data/llm/authz/decision):
# the same answer, with reasons and the obligations later stages obey.
decision := object.union(
	object.union({"allow": allow, "reasons": reasons, "deanonymize": deanonymize}, feature_obligation),
	ner_obligation,
)

# Administrators get no features obligation, which means every feature.
feature_obligation := {} if {
	input.user.role == "admin"
} else := {"features": [f | some f in features]}

# A tier's optional ner_partial ("pass" or "block"): whether a request NER could not
# read in full may go on.
ner_obligation := {"ner_partial": tier.ner_partial} if {
	tier.ner_partial
} else := {}

deanonymize if input.user.role in data.access.deanonymize_roles

default deanonymize := false

reasons contains "unknown tier" if {
	input.user.role != "admin"
	not tier
}

reasons contains sprintf("model %s is not available to tier %s", [input.request.model, input.user.tier]) if {
	tier
	input.action == "chat"
	not model_allowed
}

reasons contains sprintf("feature %s is not available to tier %s", [f, input.user.tier]) if {
	some f in input.request.features
	tier
	not f in features
}
