// A minimal fake of the repo host's "who owns this token" endpoint
// (GitHub REST: GET /user), for login tests that need nothing else.
// Usage: node server.mjs PORT 'token=login,token=login'
// Answers like GitHub: 200 {"login": ...} for a known token, 401
// {"message":"Bad credentials"} otherwise. Logs each call to stdout.
import http from 'node:http';

const port = Number(process.argv[2]);
const map = new Map((process.argv[3] || '').split(',').filter(Boolean).map((kv) => kv.split('=')));

http.createServer((req, res) => {
  const auth = req.headers.authorization || '';
  const token = auth.replace(/^(Bearer|token) /i, '');
  console.log(`${req.method} ${req.url} known=${map.has(token)}`);
  if (req.method === 'GET' && req.url === '/user' && map.has(token)) {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ login: map.get(token), id: 1000 + map.size, type: 'User' }));
    return;
  }
  res.writeHead(401, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' }));
}).listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
