"""rpcseal: signed and encrypted RPC envelopes (envelope v3), from Python.

A thin layer over the Rust library: every rule (format, checks, policy, replay) is the
library's. Cryptography runs without the GIL, and an :class:`Opener` may be shared by
threads.

    import rpcseal
    alice, bob = rpcseal.Identity.generate(), rpcseal.Identity.generate()
    sealer = rpcseal.Sealer(alice, [bob.public()], mode="mac")
    envelope = sealer.seal(b'{"sku": 42}', {"method": "inventory.get"})
    opener = rpcseal.Opener(identity=bob, trust=[alice.public()])
    msg = opener.open(envelope)               # msg.payload, msg.metadata, msg.sender

Rejections raise :class:`Rejected`, whose ``kind`` is the failure class ("replayed",
"bad_authenticator", "untrusted_sender", ...). Legacy v2 (oslo.messaging) envelopes are
read only by :meth:`Opener.open_any` under a policy that opts in, as the distinct,
unauthenticated :class:`LegacyMessage`.

The oslo.messaging driver (``rpcseal+rabbit://`` transport URLs) is in :mod:`rpcseal.oslo`.
"""

from ._rpcseal import (
    HAS_REDIS,
    FileReplayStore,
    GroupKey,
    GroupPublicKey,
    Identity,
    KeyFormatError,
    Keyring,
    LegacyMessage,
    MemoryReplayStore,
    MisuseError,
    Opened,
    Opener,
    PendingReply,
    Policy,
    PublicIdentity,
    RPC_CONTENT_TYPE,
    RPC_IN_REPLY_TO,
    RPC_MESSAGE_ID,
    RPC_METHOD,
    RPC_REPLY_TO,
    RedisReplayStore,
    Rejected,
    ReplayStoreBase,
    ReplayStoreError,
    RequestContext,
    Responder,
    RpcsealError,
    Sealer,
    SessionFacts,
    SymmetricKey,
    __version__,
    error_kinds,
    inspect,
    seal_legacy_v2,
)

__all__ = [
    "HAS_REDIS",
    "FileReplayStore",
    "GroupKey",
    "GroupPublicKey",
    "Identity",
    "KeyFormatError",
    "Keyring",
    "LegacyMessage",
    "MemoryReplayStore",
    "MisuseError",
    "Opened",
    "Opener",
    "PendingReply",
    "Policy",
    "PublicIdentity",
    "RPC_CONTENT_TYPE",
    "RPC_IN_REPLY_TO",
    "RPC_MESSAGE_ID",
    "RPC_METHOD",
    "RPC_REPLY_TO",
    "RedisReplayStore",
    "Rejected",
    "ReplayStoreBase",
    "ReplayStoreError",
    "RequestContext",
    "Responder",
    "RpcsealError",
    "Sealer",
    "SessionFacts",
    "SymmetricKey",
    "__version__",
    "error_kinds",
    "inspect",
    "seal_legacy_v2",
]
