"""Byte accounting by (src, dst, tag) and by tag."""

from __future__ import annotations

from netem_helpers import build, send_at


def test_rows_and_totals_by_tag():
    env, net, log = build({"topology": "complete"}, n=3)
    send_at(env, net, 0.0, 0, 1, 100, "red")
    send_at(env, net, 0.0, 0, 1, 50, "red")
    send_at(env, net, 0.0, 0, 1, 70, "syn")
    send_at(env, net, 0.0, 2, 0, 10, "red")
    env.run(until=0.0 + 1e-9)
    # Sent but not yet delivered: counted as sent only.
    assert net.accounting[(0, 1, "red")]["bytes_sent"] == 150
    assert net.accounting[(0, 1, "red")]["bytes_delivered"] == 0
    env.run()
    rows = net.accounting.rows()
    keys = ("src", "dst", "tag", "messages", "bytes_sent", "bytes_delivered", "bytes_dropped")
    assert [tuple(r[k] for k in keys) for r in rows] == [
        (0, 1, "red", 2, 150, 150, 0),
        (0, 1, "syn", 1, 70, 70, 0),
        (2, 0, "red", 1, 10, 10, 0),
    ]
    by_tag = net.accounting.by_tag()
    assert by_tag["red"]["bytes_sent"] == 160 and by_tag["syn"]["messages"] == 1
    assert net.accounting.totals()["bytes_delivered"] == 230
    assert net.accounting.by_node()[0] == {"messages_sent": 3, "bytes_sent": 220, "bytes_received": 10}


def test_drops_are_counted_as_dropped_bytes():
    env, net, log = build({}, n=6)
    send_at(env, net, 0.0, 0, 3, 500, "uni")  # not neighbours on a ring
    send_at(env, net, 0.0, 0, 1, 200, "uni")
    env.run()
    row = net.accounting[(0, 3, "uni")]
    assert (row["messages"], row["bytes_sent"], row["bytes_dropped"], row["dropped"]) == (1, 500, 500, 1)
    assert net.accounting.totals("uni") == {
        "messages": 2,
        "bytes_sent": 700,
        "bytes_delivered": 200,
        "bytes_dropped": 500,
        "delivered": 1,
        "dropped": 1,
    }


def test_observers_see_send_and_resolution():
    env, net, _ = build({}, n=3)
    seen = []

    class Obs:
        def on_send(self, rec):
            seen.append(("send", rec.msg_id, rec.status, env.now))

        def on_message(self, rec):
            seen.append(("done", rec.msg_id, rec.status, env.now))

    net.add_observer(Obs())
    send_at(env, net, 1.0, 0, 1, 1000, "x")
    env.run()
    assert seen == [("send", 0, "pending", 1.0), ("done", 0, "delivered", 1.0 + 0.0 + 8000 / 100e6 + 0.01)]
