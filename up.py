import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self): self.send_response(204); self.end_headers(); open('up.log','a').write(self.path+'\n')
    do_POST=do_GET
    def log_message(self,*a): pass
http.server.ThreadingHTTPServer(('127.0.0.1',18903),H).serve_forever()
