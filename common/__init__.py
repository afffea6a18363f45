"""Code shared by every app in the suite: configuration, the Redis session
store, the issuer (discovery and keys), the relying party's protocol steps
(one module per step), the browser sign-in, token validation, the flow
inspector and the base templates.

Protocol logic lives here once; an app package holds only what is specific
to its application type.
"""
