"""The sign-in chain assembled on a lab root (`chain`), the browser that signs in through it (`browser`,
`signin`) and the HTTP/WebSocket client run inside the namespaces (`client`)."""
