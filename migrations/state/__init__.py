"""state.db schema steps: numbered SQL files applied in order, tracked by PRAGMA user_version."""
