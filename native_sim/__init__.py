"""The native-app simulator: a command-line program that signs a user in the
way a desktop or mobile app must (guide sections d and e).

Two modes, one baseline and one legacy variant:

``login`` (the recommended flow)
    Authorization Code with PKCE as a *public* client (RFC 8252, "OAuth 2.0
    for Native Apps"): the program has no secret, because anything shipped
    inside an app can be extracted.  It opens the user's *system* browser
    (RFC 8252 §6: never an embedded web view, which could read the
    password) and receives the authorization response on a one-shot HTTP
    listener bound to the loopback interface (RFC 8252 §7.3).  PKCE
    (RFC 7636) makes an intercepted code useless to another local program.

``password-login`` (the "trusted app" mode)
    The Resource Owner Password grant (RFC 6749 §4.3): the program itself
    asks for the user's password and sends it to the issuer.  RFC 9700 §2.4
    says this grant MUST NOT be used; it is here, off unless ``TRUSTED_MODE``
    is ``true`` (or ``auto``, the default, against the bundled dev issuer),
    because the guide describes it and existing apps still use it.

The other commands (``call-api``, ``refresh``, ``whoami``, ``logout``) work on
the tokens either mode stored.  Run ``python -m native_sim --help``.

Modules: :mod:`.loopback` (the redirect listener), :mod:`.storage` (where
tokens live between runs), :mod:`.commands` (one function per command),
:mod:`.trusted` (``password-login``, the trusted-app mode), :mod:`.context`
(what every command shares), :mod:`.summary` (how a sign-in is described)
and :mod:`.__main__` (the command line).  The protocol itself lives in
:mod:`common` (one module per protocol step), shared with every other app.
"""
