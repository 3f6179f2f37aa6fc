// A minimal fake of the repo host's "who owns this token" endpoint
// (GitHub REST: GET /user), for login tests that need nothing else.
// Usage: node server.mjs PORT 'token=login,token=login'
// A token whose login starts with "slow:" is answered after 2 seconds
// (for tests of requests in flight during a shutdown).
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
    const login = map.get(token);
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ login: login.replace(/^slow:/, ''), id: 1000 + map.size, type: 'User' }));
    };
    if (login.startsWith('slow:')) setTimeout(answer, 2000); else answer();
    return;
  }
  res.writeHead(401, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' }));
}).listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
