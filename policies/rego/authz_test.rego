# Tests for authz.rego: `llm-gateway policy test` runs every test_ rule below.
# The tier data comes from policies/data/access.yaml unless a test replaces it
# with `with data.access as {...}`.
package llm.authz_test

import rego.v1

import data.llm.authz

chat(role, tier, model, features) := {
	"action": "chat",
	"user": {"id": "u-1", "role": role, "tier": tier, "groups": []},
	"request": {"endpoint": "openai", "model": model, "features": features},
	"context": {"environment": "test"},
}

action(name, role) := {
	"action": name,
	"user": {"id": "u-1", "role": role, "tier": "free", "groups": []},
	"request": {"endpoint": name, "model": null, "features": []},
	"context": {"environment": "test"},
}

gold_only := {
	"tiers": {"gold": {"models": ["gold-model"], "features": ["tools"]}},
	"deanonymize_roles": ["auditor"],
}

# --- administrators ---------------------------------------------------------------

test_admin_may_call_any_model if {
	authz.allow with input as chat("admin", null, "any-model-at-all", [])
}

test_admin_is_allowed_whatever_the_tier_and_features if {
	authz.allow with input as chat("admin", "free", "gpt-4", ["tools", "json_output"])
}

test_admin_decision_restricts_no_feature if {
	d := authz.decision with input as chat("admin", null, "gpt-4", ["streaming", "tools"])
	d.allow
	not "features" in object.keys(d)
	count(d.reasons) == 0
}

test_admin_may_do_other_actions if {
	authz.allow with input as action("audit.read", "admin")
}

# --- tiers and models -------------------------------------------------------------

test_free_tier_may_call_its_models if {
	authz.allow with input as chat("user", "free", "demo", [])
	authz.allow with input as chat("user", "free", "ollama-local", [])
}

test_free_tier_may_not_call_premium_models if {
	not authz.allow with input as chat("user", "free", "gpt-4", [])
	not authz.allow with input as chat("user", "free", "claude-sonnet", [])
}

test_premium_tier_may_call_premium_models if {
	authz.allow with input as chat("user", "premium", "gpt-4", [])
	authz.allow with input as chat("user", "premium", "claude-sonnet", [])
}

test_premium_tier_may_not_call_models_outside_its_list if {
	not authz.allow with input as chat("user", "premium", "gpt-5-preview", [])
}

test_enterprise_wildcard_allows_any_model if {
	authz.allow with input as chat("user", "enterprise", "gpt-5-preview", [])
}

test_service_accounts_follow_their_tier if {
	authz.allow with input as chat("service", "premium", "gpt-4", [])
	not authz.allow with input as chat("service", "free", "gpt-4", [])
}

test_other_roles_may_not_call_models if {
	not authz.allow with input as chat("guest", "enterprise", "demo", [])
	not authz.allow with input as chat("auditor", "enterprise", "demo", [])
}

test_unknown_tier_is_denied if {
	not authz.allow with input as chat("user", "platinum", "demo", [])
}

test_missing_tier_is_denied if {
	not authz.allow with input as chat("user", null, "demo", [])
}

test_the_tier_lists_come_from_data if {
	authz.allow with input as chat("user", "gold", "gold-model", ["tools"]) with data.access as gold_only
	not authz.allow with input as chat("user", "free", "demo", []) with data.access as gold_only
}

test_model_listing_follows_the_tier if {
	authz.allow with input as object.union(chat("user", "free", "demo", []), {"action": "models.list"})
	not authz.allow with input as object.union(chat("user", "free", "gpt-4", []), {"action": "models.list"})
}

# --- features ---------------------------------------------------------------------

test_free_tier_may_stream if {
	authz.allow with input as chat("user", "free", "demo", ["streaming"])
}

test_free_tier_may_not_use_tools if {
	not authz.allow with input as chat("user", "free", "demo", ["tools"])
	not authz.allow with input as chat("user", "free", "demo", ["streaming", "tools"])
}

test_premium_tier_may_use_tools_and_json_output if {
	authz.allow with input as chat("user", "premium", "gpt-4", ["streaming", "tools", "json_output"])
}

test_an_unknown_feature_is_denied if {
	not authz.allow with input as chat("user", "enterprise", "gpt-4", ["time_travel"])
}

# --- other actions ----------------------------------------------------------------

test_anyone_signed_in_may_scan_with_dlp if {
	authz.allow with input as action("dlp.scan", "user")
	authz.allow with input as action("dlp.scan", "guest")
	authz.allow with input as action("guardrails.check", "user")
}

test_auditors_read_audit_and_usage_data if {
	authz.allow with input as action("audit.read", "auditor")
	authz.allow with input as action("usage.read", "auditor")
}

test_users_may_not_read_audit_data if {
	not authz.allow with input as action("audit.read", "user")
}

test_auditors_and_admins_read_compliance_reports if {
	authz.allow with input as action("reports.read", "auditor")
	authz.allow with input as action("reports.read", "admin")
}

test_users_and_services_may_not_read_compliance_reports if {
	not authz.allow with input as action("reports.read", "user")
	not authz.allow with input as action("reports.read", "service")
}

usage_read(role, scope) := object.union(action("usage.read", role), {"request": {"endpoint": "usage.read", "scope": scope}})

test_users_read_their_own_usage_only if {
	authz.allow with input as usage_read("user", "own")
	not authz.allow with input as usage_read("user", "tenant")
	not authz.allow with input as usage_read("service", "tenant")
}

test_auditors_and_admins_read_their_tenants_usage if {
	authz.allow with input as usage_read("auditor", "tenant")
	authz.allow with input as usage_read("admin", "tenant")
}

test_everyone_may_see_their_own_limits if {
	authz.allow with input as action("limits.read", "user")
	authz.allow with input as action("limits.read", "guest")
}

test_an_unknown_action_is_denied if {
	not authz.allow with input as action("admin.shutdown", "user")
}

# --- the decision object ----------------------------------------------------------

test_decision_allows_as_allow_does if {
	authz.decision.allow with input as chat("user", "premium", "gpt-4", ["tools"])
	not authz.decision.allow with input as chat("user", "free", "gpt-4", [])
}

test_decision_gives_the_reasons_for_a_denial if {
	d := authz.decision with input as chat("user", "free", "gpt-4", ["tools"])
	"model gpt-4 is not available to tier free" in d.reasons
	"feature tools is not available to tier free" in d.reasons
}

test_decision_names_an_unknown_tier if {
	d := authz.decision with input as chat("user", "platinum", "demo", [])
	d.reasons == {"unknown tier"}
}

test_decision_has_no_reasons_for_an_allow if {
	d := authz.decision with input as chat("user", "premium", "gpt-4", [])
	count(d.reasons) == 0
}

test_decision_features_are_the_tiers if {
	d := authz.decision with input as chat("user", "premium", "gpt-4", [])
	{f | some f in d.features} == {"streaming", "tools", "json_output"}
}

test_decision_deanonymizes_for_admins if {
	d := authz.decision with input as chat("admin", "premium", "gpt-4", [])
	d.deanonymize == true
}

test_decision_does_not_deanonymize_for_users if {
	d := authz.decision with input as chat("user", "premium", "gpt-4", [])
	d.deanonymize == false
}

test_deanonymize_roles_come_from_data if {
	d := authz.decision with input as chat("auditor", "gold", "gold-model", []) with data.access as gold_only
	d.deanonymize == true
	e := authz.decision with input as chat("admin", "gold", "gold-model", []) with data.access as gold_only
	e.deanonymize == false
}

# --- confirmations ----------------------------------------------------------------

test_anyone_signed_in_may_act_on_their_confirmations if {
	authz.allow with input as action("confirmations.read", "user")
	authz.allow with input as action("confirmation.approve", "user")
	authz.allow with input as action("confirmation.cancel", "service")
}

about(name, role, relation) := object.union(action(name, role), {"confirmation": {
	"id": "cf_1", "action": "terminate", "environment": "production",
	"relation": relation, "requested_by": "u-2",
}})

test_requesters_and_approvers_may_decide_a_confirmation if {
	authz.allow with input as about("confirmation.approve", "user", "requester")
	authz.allow with input as about("confirmation.approve", "ops", "approver")
	authz.allow with input as about("confirmations.read", "user", "approver")
	authz.allow with input as about("confirmation.cancel", "service", "requester")
}

test_others_may_not_decide_a_confirmation_unless_a_rule_says_so if {
	not authz.allow with input as about("confirmation.approve", "user", "other")
	not authz.allow with input as about("confirmations.read", "user", "other")
	not authz.allow with input as about("confirmation.cancel", "user", "other")
	authz.allow with input as about("confirmation.approve", "admin", "other")
}

# --- the admin API's keys ------------------------------------------------------------

key_actions := ["admin.keys.create", "admin.keys.list", "admin.keys.read", "admin.keys.revoke", "admin.keys.rotate"]

test_admins_may_manage_keys if {
	every name in key_actions {
		authz.allow with input as action(name, "admin")
	}
}

test_no_one_else_may_manage_keys if {
	every name in key_actions {
		every role in ["user", "service", "auditor", "ops"] {
			not authz.allow with input as action(name, role)
		}
	}
}

# --- the admin API's directory: the tenant's record, teams, users -----------------------

directory_actions := [
	"admin.tenants.read", "admin.tenants.update",
	"admin.teams.create", "admin.teams.list", "admin.teams.read", "admin.teams.update", "admin.teams.delete",
	"admin.users.create", "admin.users.list", "admin.users.read", "admin.users.update", "admin.users.delete",
]

test_admins_may_manage_the_directory if {
	every name in directory_actions {
		authz.allow with input as action(name, "admin")
	}
}

test_no_one_else_may_manage_the_directory if {
	every name in directory_actions {
		every role in ["user", "service", "auditor", "ops"] {
			not authz.allow with input as action(name, role)
		}
	}
}
