"""A channel whose two ends live in different processes/hosts, carried by Zenoh.

Theory of operation
-------------------
``open_zenoh_sender(session, key, policy=...)`` and ``open_zenoh_receiver(session, key, capacity,
policy)`` return ports with the in-process interface (``send``/``send_nowait``/``clone``/
``close``/``aclose``/``statistics``; ``receive``/``receive_nowait``/``async for``). One key =
one channel = one edge of the graph (point-to-point); clones of the sender share one sequence
counter, so fan-in inside a process is one logical sender.

Data path. ``send`` encodes the item (kernel codec), stamps the 27-byte header (DATA, sequence
id, episode, sender time, sender epoch) and ``put``\\s it with the channel's QoS (congestion
``drop``: a publisher never blocks). On the receiving side a Zenoh thread runs the subscriber
callback, which parses the header, decodes the body and deposits the item into the receiving
port's bounded deque under a :class:`~rtrun._bridge.ThreadBridge` lock, applying the channel
policy there: capacity and policy are enforced on the receiving side, every drop counted. Bad
input (wrong header size/version/type, undecodable body, unknown tag, wrong message class) is
dropped in the callback, counted per reason (``header_*``/``body_*`` in ``dropped``) and logged
at most once per reason per :data:`LOG_INTERVAL_S`; the receiving actor never sees it.

Batching. On asyncio, a message published by ``send_nowait`` less than 250 µs after the
previous one (a burst, e.g. a loop of ``send_nowait``) is collected, with the rest of the
burst, until the end of the event-loop iteration and leaves as one DATA_BATCH sample (or as soon
as 32 messages / 64 KB are pending), each message keeping its own sequence id (details: ``_zenoh_sender``). The first
message of a burst and every sparse one leave at once, with nothing scheduled after the ``put``
(measured: that work delays the sample). Sparse traffic is therefore never delayed, and a burst
costs one Zenoh sample -- one callback and one GIL acquisition on the receiving side -- per
batch. ``block`` channels never batch (their credits are per message).

Sequence gaps. Within one epoch, sequence ids arrive in order (one publisher, one priority lane).
A jump from the expected id to a higher one counts the missing ones as ``sequence_gap`` drops; an
older id is ``stale_sequence``. An undecodable body (``body_*``) does not move the sequence
(garbage claiming the next id must not make the real message look stale), but its id is
remembered so a later gap over it does not count it twice. So ``sent == received + queued +
sum(dropped)`` holds on the receiving side, where ``sent`` counts every sample that arrived on
the key plus the gaps.

``block`` across the wire: credit-based flow control. The receiving port publishes CREDIT
samples on ``<key>/@credit`` (reliable, ``interactive_high`` lane, express): "I have consumed
every sequence id below ``consumed``; my window is ``window``; ``waiting`` receives wait on my
``open_ports`` clones". A sender with policy ``block`` may publish id ``s`` only while
``s < consumed + window`` for every live receiver, so a full receiver makes ``send`` wait in the
*sender's event loop* -- end-to-end backpressure without blocking a Zenoh thread or a publisher.
The window is the capacity plus the receives waiting (every clone), because in-process each
waiting receive takes one item besides the buffer: capacity 0 (rendezvous) admits exactly one
item per waiting receive. Credits are sent when a sender appears (from the Zenoh thread), when a
clone opens or closes, and on ``block`` channels also after each item taken, when a receive
starts waiting, when one leaves without an item (cancelled, closed, end of stream: its share of
the window is withdrawn at once) and every :data:`CREDIT_REFRESH_S` while one waits (recovering
a lost credit). Grants are cumulative and numbered, so a lost or reordered grant never
deadlocks or shrinks the window. The one race left is inherent: an item the sender published
under a share withdrawn before the new credit reached it arrives with nobody waiting; it stays
in the buffer for the next receive (never lost; ``queued`` shows it, even at capacity 0), which
is why a ``block`` receiver's buffer is bounded by the capacity plus the most receives ever
waiting at once, beyond which an item is a ``credit_violation``. Other policies never wait: the
sender publishes and the receiver's policy decides.

Statistics. Each end reports anyio's ``MemoryObjectStreamStatistics`` meanings (its name in
brackets) as far as it can know them: its own counts directly, the far end's from the latest
control sample, so a field lags the far end's operation by one message (the asynchrony of
delivery) and, once settled, both ends agree (conformance ``statistics_agree``). The far end
tells: receivers through CREDIT (above), the sender through SENDER_STATE samples on the data
lane (its open clones and tasks waiting in ``send``), published when either changes and when a
receiver credits it for the first time (unless it is the assumed 1 clone, 0 waiting). Like all
control samples they are reliable but never block (congestion ``drop``): one lost to an
overloaded link leaves that field stale until the next sample of its kind (each carries the
whole state; only a waiting ``block`` receiver also re-announces periodically).

- ``capacity`` [``max_buffer_size``]: receiver: its own; sender: ``window - waiting`` of the
  receivers' latest credits (the smallest), 0 before the first credit.
- ``queued`` [``current_buffer_used``]: receiver: items in its buffer; sender on ``block``: items
  sent and not yet acknowledged consumed (``sent - consumed``: in flight or buffered), on other
  policies 0 (unknown: see below).
- ``open_send_ports`` / ``open_receive_ports`` [``open_*_streams``]: each end counts its own open
  clones; the receiver counts the live sender's clones as its latest SENDER_STATE says (1 until
  one arrives, 0 without a live sender or after END_OF_STREAM); the sender sums the live
  receivers' clones as their credits say (1 for a receiver known only by its token).
- ``tasks_waiting_send`` / ``tasks_waiting_receive``: each end counts every task of its own that
  waits (not only the one parked on the bridge); the receiver shows the sender's count from
  SENDER_STATE; the sender shows the receivers' sum from their credits on ``block``, 0 otherwise.
- ``sent``/``received``/``dropped`` are rtrun's: the receiver counts arrivals (+ gaps), items
  taken and every drop; the sender counts what it published, ``received`` = acknowledged
  consumed on ``block`` (taken or counted lost), and its own ``control_*`` drops.

Decision: receivers of the other policies send no per-item or per-wait credits -- a Zenoh put
on the hot path of every receive for numbers the sender does not use (its latency is what
``benchmarks/zenoh_hop.py`` holds to 1.25x bare Zenoh) -- so their sender reports ``queued``,
``received`` and ``tasks_waiting_receive`` as 0; clones are counted on every policy.

Presence, epochs, faults. Each opened sender is an *incarnation* with an epoch of its own (a
random non-zero u32, in the header's ``session_epoch`` field: header-compatible), and declares a
liveliness token ``<key>/@tx/<epoch>``; each receiving port ``<key>/@rx/<id>``. A receiver
adopts the epoch of a live sender token; when a newer epoch appears (the sender's process
restarted, or an actor restarted after it terminated reopened its output in the same session)
the old one is retired: late messages from it are dropped as ``stale_epoch``, and so are its
queued ones unless it had ended with END_OF_STREAM (then they were sent for good and are
delivered before the new sender's, without an ``EndOfStream`` in between, as in-process when a
closed output reopens; on ``block`` they count against the new sender's window). A retired
epoch whose token shows up again while a newer sender is live stays retired. When the current sender's token vanishes
without an END_OF_STREAM (process killed: 1-2 ms; hung: the sender's lease), queued items are
dropped (``peer_vanished``) and the next ``receive`` raises ``BrokenResourceError`` *once*; later
receives wait for a new epoch (the supervisor was told; the launcher restarts the far side).
Data from an epoch without a live token is accepted only while no sender is live (startup race),
otherwise dropped as ``unknown_epoch``, so stray or forged traffic cannot hijack a channel.

End of stream. When the last sender clone closes, an END_OF_STREAM sample carrying the number of
DATA samples sent is published reliably on the data lane (same priority, so it follows the data).
``aclose()`` publishes it from a worker thread with congestion ``block`` and then waits for
every live receiver's END_OF_STREAM_ACK (both bounded by ``EOS_BLOCK_TIMEOUT_S``), so a process that exits
right after closing is never mistaken for a crashed one; the sync ``close()`` never blocks and
relies on re-publication: a closed sender re-publishes END_OF_STREAM whenever a receiver's credit
refresh arrives. The receiver delivers everything still queued, waits up to ``EOS_GRACE_S`` for
data still in flight, counts the rest as ``sequence_gap`` and then raises ``EndOfStream``. The
sender's token (and every declaration of it) stays until its session closes, or until
``release()`` once every live receiver acknowledged the END_OF_STREAM (the launcher releases an
ended sender when its output reopens; the token then leaves harmlessly: each receiver has the
END_OF_STREAM or follows a newer sender). A receiving port closed on purpose
publishes RECEIVER_CLOSED; once no receiver is left, ``send`` raises ``BrokenResourceError`` as
in-process. A receiver that *vanished* does not break the sender (its host will be restarted):
``block`` senders wait, others keep publishing.

Module layout: this module is the façade and the design; ``_zenoh_port`` holds the shared
pieces (codec, constants, port base), ``_zenoh_sender`` the sending end, ``_zenoh_receiver``
the receiving port and ``_zenoh_receiver_core`` its shared state and Zenoh-thread side. The
protocol's state machines are pure, in ``_zenoh_protocol`` (tested without Zenoh): the
receiving side's epochs, sequence gaps and end-of-stream, the sending side's credit ledger;
the overflow policy is ``_overflow``'s, as on every channel. ``rtrun.testing.MockNetwork``
runs both ends over an in-memory transport with loss, latency and vanish faults.

Scheduling. Every ``send`` and every ``receive`` is a checkpoint, as in-process (issue 15):
a cancellation point (cancelled, ``receive`` raises and takes nothing, however many items are
buffered; a cancelled ``send`` never publishes) and a scheduling point (it yields to the loop
once, also when an item is already buffered or a dropping policy never waits), so a busy
consumer or producer on a cross-host edge cannot starve the loop, nor keep taking commands once
cancelled. The yield is anyio's checkpoint without its dispatch (``rtrun._lowlevel``). ``send``
yields *before* publishing: yielding after ``put`` was measured to delay the sample (the loop's
work competes with Zenoh's transmit thread on a small machine); after a put that published at
once, the sending thread only yields its CPU (``os.sched_yield``, measured to let the transmit
thread send sooner: see ``_zenoh_sender.yield_to_transmit``). A ``send_nowait`` burst still
leaves in DATA_BATCH samples; a loop of ``await send()`` publishes each message at once (its
yield would close a batching window anyway). On the receiving side a burst still costs one loop
wake-up, not one per item: a receive that finds an item buffered yields and takes it. The bridge's descriptor
write happens after the lock is released (it drops the GIL; under the lock the woken loop would
run into the lock).

Decisions: samples are not authenticated (use Zenoh TLS/ACLs); header timestamps are the
sender's ``time.monotonic_ns()`` (opaque, echoed, never compared across hosts); bad-input log
throttling uses ``time.monotonic`` on Zenoh threads (diagnostics only, no runtime semantics).
Bodies are decoded in the Zenoh callback, before they enter the buffer, so bad input can never
displace a good item from a ``latest``/``drop_oldest`` buffer (a lazily decoded garbage sample
would); the compiled decode path (:mod:`rtrun._codec_fast`) keeps that cheap.
"""

from __future__ import annotations

from ._zenoh_port import (
    CREDIT_REFRESH_S,
    EOS_BLOCK_TIMEOUT_S,
    LOG_INTERVAL_S,
    Codec,
    kernel_codec,
)
from ._zenoh_protocol import EOS_GRACE_S
from ._zenoh_receiver import ZenohReceivePort, open_zenoh_receiver
from ._zenoh_sender import ZenohSendPort, open_zenoh_sender

__all__ = [
    "CREDIT_REFRESH_S",
    "EOS_BLOCK_TIMEOUT_S",
    "EOS_GRACE_S",
    "LOG_INTERVAL_S",
    "Codec",
    "ZenohReceivePort",
    "ZenohSendPort",
    "kernel_codec",
    "open_zenoh_receiver",
    "open_zenoh_sender",
]
