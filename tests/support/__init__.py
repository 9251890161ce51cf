"""What the tests stand on: fakes of everything outside the process (one per platform), the harness
that runs the real application, process helpers, the crash and forgery machinery. bench/ imports only from here."""
