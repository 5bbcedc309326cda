"""The applications: the command line, the demo, benchmarks harness, reports and the reproduce grid."""
