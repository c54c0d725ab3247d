"""Process checks shared by the tests."""


def gone(pid):
    """Whether process ``pid`` has exited (a zombie counts: it runs no
    more)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
