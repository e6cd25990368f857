// Shows the signaling address of this very server (same host and port as the page).
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
document.getElementById('ws-url').textContent = `${scheme}//${location.host}/`;
