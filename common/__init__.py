"""Code shared by every app in the suite: configuration, the Redis session
store, the OpenID Connect client, token validation, the flow inspector and
the base templates.

Protocol logic lives here once; an app package holds only what is specific
to its application type.
"""
