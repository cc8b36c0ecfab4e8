// Entry point of the empty development extension that carries the suite (see package.json).
exports.activate = () => {};
