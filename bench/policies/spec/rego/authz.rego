package llm.authz

# Allow admin users full access
allow {
    input.user.role == "admin"
}

# Allow users to access specific models
allow {
    input.user.role == "user"
    model_allowed[input.request.model]
}

model_allowed["claude-3-sonnet"] {
    input.user.tier == "premium"
}

model_allowed["gpt-4"] {
    input.user.tier == "enterprise"
}
