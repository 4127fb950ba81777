"""Services: one package per flow (docs/layout.md); errors, runtime and input limits shared by all."""
