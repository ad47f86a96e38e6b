//! The xenstore client: xs_wire framing, requests, watches, transactions.
