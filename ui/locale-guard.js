// Runs before the vendored chart library (a classic script, so before it): uPlot formats
// numbers with the browser's language at load, and a system locale such as "C" or "POSIX"
// (a server's or a minimal desktop's) is no valid language tag for Intl, which would stop it
// from loading at all. The numbers then follow American English.
(() => {
  try {
    new Intl.NumberFormat(navigator.language);
  } catch {
    Object.defineProperty(navigator, 'language', { value: 'en-US', configurable: true });
  }
})();
