"""The one backend program of tests and bench: ``python -m harness.backend`` (see
`harness.backend.program` for its options), with its services in modules of their own:
`echo` (``test.Echo``), `interop` (``interop.Echo``), `refusing` (``--refuse-all``) and
`reflection` (server reflection for ``test.Echo``)."""
