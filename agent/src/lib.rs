//! sworn node agent.
