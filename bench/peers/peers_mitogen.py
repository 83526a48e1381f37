"""mitogen's side of put and fetch, run in its children (forwarded by mitogen itself).

Kept apart from peers_remote.py: chopsticks_nb's module server preloads the modules a module
imports, function-level imports included, so a mention of mitogen there would ship mitogen to
every chopsticks_nb agent that imports peers_remote.
"""


def warm():
    """Import what put needs before the transfer is timed."""
    import mitogen.service  # noqa: F401

    return True


def mitogen_get(context, path, destination):
    """Pull ``path`` from the controller's mitogen FileService into ``destination``."""
    import mitogen.service

    with open(destination, "wb") as out:
        ok, metadata = mitogen.service.FileService.get(context, path, out)
    if not ok:
        raise OSError(f"FileService transfer of {path} was cut short")
    return metadata["size"]


def mitogen_stream(sender, path, chunk=512 * 1024):
    """Send ``path`` through a mitogen Sender, chunk by chunk (mitogen has no fetch)."""
    size = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk)
            if not data:
                break
            sender.send(data)
            size += len(data)
    sender.close()
    return size
