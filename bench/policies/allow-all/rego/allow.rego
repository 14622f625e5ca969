# The passthrough profile's policy: every authenticated call is allowed.
package llm.authz

import rego.v1

allow := true
