//! Roles, grants with expiry, targets, and the pure authorize decision that returns a Permit or a reasoned Denial.
