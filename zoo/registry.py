"""Name -> object registries, so flags can be checked before anything is built."""
from zoo.errors import UsageError


class UnknownNameError(UsageError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return self.args[0]


class Registry:
    """A mapping of unique names to objects, with errors that list the known names."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        """Decorator: `@MODELS.register("dcgan")`. A taken name is an error."""

        def add(obj):
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is already registered "
                               f"(by {self._entries[name]!r})")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name):
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: "
                           f"{', '.join(self.names())}") from None

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries


MODELS = Registry("model")
DATASETS = Registry("dataset")
