//! The HTTPS front door: HTTP to HTTPS redirect, TLS, security headers, login with MFA, the server-rendered admin UI and JSON API.
