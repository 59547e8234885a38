"""Payload business steps: upload sessions (single PUT, multipart or direct write: `sessions`), the
mount they go to (`mounts`), completion (`completion`: `claims`, `verification`, `finishing`), abort,
and signed downloads (`downloads`). Expiry and crash repair are in `reconciler`; registering external
objects in place is in `external`.

Bytes never pass through here: the store signs URLs and reports what it holds. A session and its
PENDING asset share their id and are written at once; the session is closed as the asset turns
ACTIVE or FAILED. The reconciler fails the asset of an expired session and settles what a crash
left between the two (a PENDING asset behind a closed session or behind none, an open session
behind a settled asset), so no PENDING asset outlives its session.
"""
