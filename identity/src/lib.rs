//! Domain types shared by the sworn server and agent.
