"""What `cachectl demo` runs: a sample HTTP API (`api`), the application traffic it sends
through the library (`traffic`), and the throwaway servers and the steps (`run`).

Nothing here is imported by the CLI until `cachectl demo` runs.
"""
